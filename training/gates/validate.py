"""Decide whether a checkpoint may serve: measure it, then apply the promotion gates.

In: a checkpoint URI, a `GateConfig` (thresholds from the policy, training/gates/policy.py, plus how to measure),
optionally the current champion already loaded (`Champion`: module + `ChampionRef`, resolved by the
registry's `resolve_champion`), and a `Storage` (for a pair test split). Out: a `Verdict`
(training/gates/verdict.py) with every measured value, one `GateResult` per gate and the reasons of any failure.

Steps: safe load (training/gates/safe_load.py: weights-only, meta/arch/scale consistency, finite weights);
a golden forward pass on a fixed deterministic input (finite, right shape, values in range); the
benchmark sets and the pair test split (training/gates/measure.py), each next to bicubic and, when there is
one, the champion on the same images; latency of the serving path (tiled upscale) on a reference
image; a TorchScript export checked against eager within `export_atol` (training/serve/export.py).

The threshold gates (training/gates/policy.py `threshold_gates`, the same code the registry re-applies before
promotion): PSNR-Y >= bicubic + margin_db on every set; PSNR-Y >= champion - tolerance on every set;
mean PSNR-Y gain over the champion >= min_improvement_db; latency <= budget; the export. With no
champion registered yet the champion gates pass, noted as such; a champion of another scale fails
`champion_scale` (it cannot be replaced by it). A randomly initialised model fails the margin gate.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from torch import nn

from pipeline.reference_sets import materialize
from pipeline.storage import read_uri
from training.archs import baseline_arch
from training.gates import measure
from training.gates.policy import threshold_gates
from training.gates.safe_load import CheckpointRejected, LoadReason, safe_load
from training.gates.verdict import ChampionRef, GateConfig, GateResult, SetScore, Verdict, failed_reasons
from training.serve.export import ExportResult, export_torchscript
from training.serve.upscale import resolve_device

# (model, meta, {pair set: [(lr, hr)]}, config, device, storage) -> (gates, metrics)
TaskGates = Callable[..., tuple[list[GateResult], dict[str, float]]]

__all__ = ["Champion", "GateConfig", "Validation", "Verdict", "exit_code", "validate", "validate_checkpoint"]


class Champion(NamedTuple):
    """The model a candidate is compared with (None module: none registered yet, see `ref.note`)."""

    module: nn.Module | None
    ref: ChampionRef


class Validation(NamedTuple):
    """A verdict and the export it checked (None when the checkpoint was rejected before export)."""

    verdict: Verdict
    exported: ExportResult | None
    checkpoint_bytes: bytes | None


def _scores(results: dict[str, dict[str, Any]]) -> list[SetScore]:
    scores = []
    for name, roles in results.items():
        champion = roles.get("champion", (None, None))
        scores.append(
            SetScore(
                name=name,
                images=roles["images"],
                psnr_y=roles["model"][0],
                ssim_y=roles["model"][1],
                bicubic_psnr_y=roles["bicubic"][0],
                bicubic_ssim_y=roles["bicubic"][1],
                champion_psnr_y=champion[0],
                champion_ssim_y=champion[1],
            )
        )
    return scores


def read_candidate(
    uri: str, config: Any, storage: Any, storage_options: dict[str, Any] | None
) -> tuple[Verdict, bytes | None, dict[str, Any] | None]:
    """The empty verdict of `uri` (with its sha256 when it can be read), its bytes (None: missing, which
    safe_load then reports with its reason) and the options that open it (the storage's own when `uri`
    is on the same scheme): the start every task's validator shares."""
    same_store = storage is not None and uri.startswith(f"{storage.scheme}://")
    options = storage_options if storage_options is not None else storage.options if same_store else None
    verdict = Verdict(passed=False, checkpoint=uri, config=config)
    try:
        data = read_uri(uri, options)
    except (FileNotFoundError, OSError):
        data = None
    if data is not None:
        verdict = verdict.model_copy(update={"checkpoint_sha256": hashlib.sha256(data).hexdigest()})
    return verdict, data, options


def _gate(name: str, passed: bool, detail: str) -> GateResult:
    return GateResult(gate=name, passed=passed, detail=detail)


def validate_checkpoint(
    uri: str,
    config: GateConfig | None = None,
    champion: Champion | None = None,
    *,
    storage: Any = None,
    storage_options: dict[str, Any] | None = None,
) -> Verdict:
    """Measure checkpoint `uri` and apply the gates; bad configuration raises ValueError (see `validate`)."""
    return validate(uri, config, champion, storage=storage, storage_options=storage_options).verdict


def validate(
    uri: str,
    config: GateConfig | None = None,
    champion: Champion | None = None,
    *,
    storage: Any = None,
    storage_options: dict[str, Any] | None = None,
    task_gates: TaskGates | None = None,
) -> Validation:
    """The verdict plus what it was measured on: the checkpoint bytes and the checked export, so that
    registering the version reads the file and exports the model no second time.

    `task_gates` (a task's own measurements on the same decoded pairs: the GAN's against its L1 twin,
    training/gates/gan_validate.py) returns gates appended after the SR ones and the verdict's `metrics`.

    `storage` (a pipeline Storage) is where pair partitions and root-relative benchmark sets (`reference/Set5`,
    pipeline/reference_sets.py) are read; a missing set raises ReferenceSetError (a ValueError) naming the
    setting `<config.settings_key>.benchmarks.<name>`; `storage_options` open the
    checkpoint (default: the storage's options when `uri` is on the same scheme).
    """
    config = config or GateConfig()
    uri = str(uri)
    verdict, data, options = read_candidate(uri, config, storage, storage_options)
    try:
        model, meta = safe_load(uri, expected_scale=config.scale, storage_options=options, data=data)
    except CheckpointRejected as exc:
        gate = _gate("safe_load", False, str(exc))
        return Validation(verdict.model_copy(update={"gates": [gate], "reasons": [str(exc)]}), None, data)
    scale = meta.scale
    golden, problem = measure.golden_check(model, config.golden_size, scale, config.golden_output_range)
    gates = [_gate("safe_load", True, f"{meta.arch} x{scale}, {meta.weights} weights")]
    gates.append(_gate("golden", problem is None, problem or "finite, right shape, in range"))
    verdict = verdict.model_copy(update={"meta": meta, "golden": golden})
    if problem is not None:  # nothing downstream is meaningful for a model that emits garbage
        return Validation(
            verdict.model_copy(update={"gates": gates, "reasons": [f"golden: {problem}"]}), None, data
        )

    # export on CPU, before the measurements move the model to the configured device
    exported = export_torchscript(model, measure.golden_input(config.golden_size), config.export_atol)
    models = {"model": model, "bicubic": baseline_arch(scale)}  # at scale 1: the input
    if champion is not None and champion.module is not None and champion.ref.scale == scale:
        models["champion"] = champion.module
    device = str(resolve_device(config.device))
    pairs = {}
    if config.pair_recipe and config.pair_partitions:
        if storage is None:
            raise ValueError(
                "GateConfig.pair_partitions is set but no storage was given to read the pairs from"
            )
        pair_set = f"pairs/{config.pair_recipe}:{config.pair_split}"
        pairs[pair_set] = measure.load_pair_split(
            storage, config.pair_recipe, config.pair_partitions, config.pair_split, config.max_pairs, scale
        )
    if not config.benchmarks and not pairs:  # with no set to score, no quality gate would run at all
        raise ValueError(
            f"no benchmark sets and no pair partitions configured: set {config.settings_key}.benchmarks"
        )
    with tempfile.TemporaryDirectory(prefix="crisp-reference-") as work:
        folders = {
            name: materialize(name, ref, storage, Path(work), f"{config.settings_key}.benchmarks.{name}")
            for name, ref in config.benchmarks.items()
        }
        scores = _scores(measure.score_sets(models, folders, scale, pairs, device))
    reference = measure.reference_image(config.reference_image, config.reference_lr_size)
    latency = measure.latency_ms(
        model, reference, scale, config.tile, config.overlap, device, config.latency_repeats
    )
    export = {
        "format": config.export_format,
        "max_abs_diff": exported.max_abs_diff,
        "passed": exported.passed,
        "shape_generic": exported.shape_generic,
        "input_shape": list(exported.input_shape),
        "checked_shapes": [list(s) for s in exported.checked_shapes],
        "error": exported.error,
    }
    verdict = verdict.model_copy(
        update={
            "champion": champion.ref if champion is not None else None,
            "scores": scores,
            "latency_ms": latency,
            "export": export,
        }
    )
    gates += threshold_gates(verdict, config, scale)
    metrics: dict[str, float] = {}
    if task_gates is not None:
        own, metrics = task_gates(model, meta, pairs, config, device, storage)
        gates += own
    reasons = failed_reasons(gates)
    verdict = verdict.model_copy(
        update={"gates": gates, "reasons": reasons, "passed": not reasons, "metrics": metrics}
    )
    return Validation(verdict, exported, data)


def exit_code(verdict: Verdict) -> int:
    """CLI convention: 0 passed; 1 failed a gate or was rejected; 2 nothing to validate (no such file)."""
    if verdict.passed:
        return 0
    missing = any(r.startswith(LoadReason.NOT_FOUND.value) for r in verdict.reasons)
    return 2 if missing else 1
