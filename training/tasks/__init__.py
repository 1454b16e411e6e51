"""Model kinds ("tasks"): what each one declares; the trainer, loader, gates, registry, release flow and
serving are shared.

In: a task name (`sr`, `quality`, `restore`, `sr_gan`, `matte`, `vsr`). Out: the `Task` record, whose fields are the
pieces a model kind supplies: its sample schema (the index the shared loader reads), its arch zoo, the
types of its `model` and `data` config sections (TrainConfig validates them by task), its Lightning module
(loss and metrics) and data module, the metric best.ckpt maximizes, its gate policy class (thresholds in the settings
under `gates.<name>`) and validator (measurements -> `Verdict`), its MLflow serving code and signature,
its serving transform and its release report (training/registry/release.py `write_release_report`). `get_task(name)` imports the task module lazily, so naming a task costs
nothing until it is used; an unknown name raises ValueError listing the known ones.

A new model kind is one module here (`training/tasks/<name>.py` exposing `TASK`) plus its archs; it
reuses training/fit/train.py, training/registry/release.py, training/registry/versions.py, training/gates/policy.py's framework and
training/registry/tracking.py unchanged.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KNOWN = ("sr", "quality", "restore", "sr_gan", "matte", "vsr")
# the restorers, one per kind of damage (`crisp restore --task KIND`): KIND -> (its recipe, registered name);
# here, not in tasks/restore.py, so the CLI lists them without importing the training stack
RESTORE_KINDS = {
    "denoise": ("restore_x1_noise", "crisp-restore-denoise"),
    "dejpeg": ("restore_x1_jpeg", "crisp-restore-dejpeg"),
    "deblur": ("restore_x1_blur", "crisp-restore-deblur"),
    "auto": ("restore_x1_mixed", "crisp-restore"),
}


@dataclass(frozen=True)
class Task:
    name: str  # also the settings key gates.<name> and the registry name prefix crisp-<name>
    sample_schema: Any  # pyarrow.Schema of the sample index (schemas/)
    archs: Mapping[str, type]  # name -> single-device nn.Module class
    build_arch: Callable[[str, int | None, Mapping[str, Any]], Any]  # (arch, scale, options) -> nn.Module
    model_config: type  # pydantic: the `model` section of a TrainConfig (arch, options, task's loss knobs)
    data_config: type  # pydantic: the `data` section (which sample partitions, batching, loader)
    lit_module: type  # LightningModule(model_config, OptimConfig): loss, metrics, EMA
    make_data: Callable[[Any, Any], Any]  # (data config, model config) -> LightningDataModule
    monitor: str  # the validation metric best.ckpt maximizes
    policy: type  # GatePolicy subclass: the thresholds and required sets
    validate: Callable[..., Any]  # (checkpoint, GateConfig, Champion, storage=...) -> Validation
    model_code: Path  # the MLflow pyfunc ("models from code") served for this kind
    signature: Callable[[], Any]  # -> mlflow ModelSignature (with params)
    input_example: Callable[[], Any]  # -> an input the signature accepts
    serve: Callable[..., Any]  # the serving transform crisp's CLI runs (e.g. tiled upscale)
    export_artifacts: Callable[
        ..., dict[str, Path]
    ]  # training/registry/package.py: what a version's artifacts hold
    serving_requirements: Callable[[], list[str]]  # pinned packages the pyfunc needs besides mlflow, numpy
    report: Callable[..., tuple[str, str]]  # (output, verdict, *, storage, ...) -> (report.html, report.json)
    # modules shipped with the pyfunc (MLflow code_paths), importable there by their file's name
    model_code_paths: tuple[Path, ...] = ()
    registered_as: str = ""  # the default registered name, "{scale}" filled in; "": crisp-<name>[-x<scale>]
    name_by_recipe: Mapping[str, str] = field(default_factory=dict)  # recipe -> registered name, first
    # a registered model whose @champion a candidate is also scored against, handed to `validate` as
    # `reference` (vsr: the single-frame model videos fall back to); "": none
    reference_model: str = ""

    def registry_name(self, meta: Any, recipe: str | None = None) -> str:
        """The default registered-model name for a model config or checkpoint meta trained on `recipe`:
        crisp-sr-x4; crisp-sr-x4-real (sr_gan); crisp-restore-denoise (restore on restore_x1_noise)."""
        if recipe in self.name_by_recipe:
            return self.name_by_recipe[recipe]
        scale = getattr(meta, "scale", None)
        if self.registered_as:
            return self.registered_as.format(scale=scale)
        return f"crisp-{self.name}-x{scale}" if scale and scale > 1 else f"crisp-{self.name}"


def get_task(name: str) -> Task:
    if name not in KNOWN:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(KNOWN)}")
    return importlib.import_module(f"training.tasks.{name}").TASK
