"""The release flow: a trained checkpoint -> validate -> report -> register (@challenger) -> promote.

In: a `ReleaseTarget` (model name, model kind (`task`, training/tasks: whose validator, serving code and
signature apply), storage, registry config carrying the gate policy, the recipe and partitions trained on), a finished training (`TrainResult` as a dict, the resolved training config) and,
optionally, a trigger's gate overrides (`tighten_gates`: stricter only, else `GatePolicyError` before
anything runs). Out: a `ReleaseResult` (verdict, version, champion, whether it was promoted and why not,
report, MLflow run id).

`release` runs every step in one process (`crisp demo`, `crisp train --release`); the `sr_train` DAG runs
the same steps one task each (`log_training`, `validate_candidate`, `write_release_report`,
`register_candidate`, `promote_candidate`). Promotion is the registry's policy (training/registry/versions.py
re-applies `RegistryConfig.policy` to the recorded verdict): a refused promotion leaves `@champion`
where it was and is a result here (`promoted=False`, `refusal`), not an exception.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.gates.policy import GatePolicy
from training.gates.validate import Validation
from training.gates.verdict import Verdict
from training.registry.versions import (
    CHAMPION,
    PromotionRefused,
    RegistryConfig,
    promote,
    register,
    resolve_champion,
)
from training.tasks import get_task

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReleaseTarget:
    """Where a candidate is released to and what it was trained on."""

    model_name: str
    storage: Any  # pipeline Storage: pair partitions, checkpoints, the report
    registry: RegistryConfig  # MLflow store + the gate policy promotion re-applies
    recipe: str
    partitions: list[str]
    device: str = "cpu"
    photos: Sequence[str | Path] = ()  # real photos for the report's side-by-sides
    tags: Mapping[str, str] = field(default_factory=dict)
    task: str = "sr"  # the model kind (training/tasks): its validator, serving code and signature


@dataclass
class ReleaseResult:
    checkpoint: str
    verdict: Verdict
    version: int
    champion: int | None  # the @champion after the release
    promoted: bool
    refusal: str | None
    report: str | None
    run_id: str


def tighten_gates(policy: GatePolicy, overrides: Mapping[str, Any] | None) -> GatePolicy:
    """The policy a trigger asked for: stricter thresholds only (GatePolicyError names a looser one)."""
    return policy.tightened(overrides)


def log_training(
    target: ReleaseTarget, train_config: Mapping[str, Any], result: Mapping[str, Any], run_name: str
) -> str:
    """The MLflow run of the training (training/registry/tracking.py); returns its id."""
    from training.registry.tracking import log_training_run

    task = get_task(target.task)
    model = task.model_config.model_validate(train_config.get("model", {}))
    data = task.data_config.model_validate(
        {**train_config.get("data", {}), "partitions": list(target.partitions)}
    )
    described = task.make_data(data, model).describe()  # the task's own catalog: recipe, manifest hash
    lineage = {
        "recipe": described["recipe"],
        "partitions": described["pair_partitions"],
        "manifest_hash": described["data_manifest_hash"],
        "root": target.storage.root,
    }
    output = str(train_config.get("output", ""))
    metrics_csv = _read_optional(target, output, "logs/metrics.csv")
    return log_training_run(target.registry, train_config, result, metrics_csv, lineage, run_name)


def _output(target: ReleaseTarget, output: str) -> Any:
    """The training run's output folder as a Storage (with the target's options on the same scheme)."""
    from pipeline.storage import Storage

    same = output.startswith(f"{target.storage.scheme}://")
    return Storage(output, dict(target.storage.options) if same else {})


def _read_optional(target: ReleaseTarget, output: str, rel: str) -> bytes | None:
    run = _output(target, output)
    return run.read_bytes(rel) if run.exists(rel) else None


def validate_candidate(checkpoint: str, target: ReleaseTarget, policy: GatePolicy) -> Validation:
    """Measure `checkpoint` against bicubic, the current @champion and the task's reference model's
    @champion (if it has one) under `policy`."""
    task = get_task(target.task)

    def champion_of(name: str) -> Any:
        return resolve_champion(f"models:/{name}@{CHAMPION}", target.registry, target.storage.options)

    extra = {"reference": champion_of(task.reference_model)} if task.reference_model else {}
    gates = policy.release_config(target.recipe, target.partitions, target.device)
    validation = task.validate(
        checkpoint, gates, champion_of(target.model_name), storage=target.storage, **extra
    )
    verdict = validation.verdict
    for score in verdict.scores:
        logger.info("%s: PSNR-Y %.2f dB vs bicubic %.2f dB", score.name, score.psnr_y, score.bicubic_psnr_y)
    logger.info("verdict: %s", verdict.summary())
    return validation


def write_release_report(
    target: ReleaseTarget, verdict: Verdict, output: str, run_id: str | None, exported: Any = None
) -> str | None:
    """The task's HTML report (training/report/sr.py, training/report/quality.py) under `<output>/report`,
    attached to the MLflow run. `exported`: the export the verdict checked (not made again)."""
    from training.registry.versions import mlflow_client

    if verdict.meta is None:
        return None  # a rejected checkpoint has nothing to show; the verdict says why
    options = target.storage.options if output.startswith("s3://") else None
    html, _ = get_task(target.task).report(
        f"{output.rstrip('/')}/report",
        verdict,
        storage=target.storage,
        exported=exported,
        metrics_csv=f"{output.rstrip('/')}/logs/metrics.csv"
        if _output(target, output).exists("logs/metrics.csv")
        else None,
        photos=list(target.photos),
        lineage={"recipe": target.recipe, "partitions": target.partitions},
        storage_options=options,
    )
    if run_id is not None:
        import tempfile

        from pipeline.storage import read_uri

        with tempfile.TemporaryDirectory(prefix="crisp-report-") as tmp:
            (Path(tmp) / "report.html").write_bytes(read_uri(html, options))
            (Path(tmp) / "verdict.json").write_text(verdict.model_dump_json(indent=1))
            mlflow_client(target.registry).log_artifacts(run_id, tmp, "report")
    return html


def register_candidate(validation: Validation, target: ReleaseTarget, run_id: str | None) -> int:
    """A new version of the model as @challenger, logged into the training run (a failing one too)."""
    verdict = validation.verdict
    return register(
        verdict.checkpoint,
        verdict,
        target.model_name,
        tags=target.tags,
        config=target.registry,
        storage_options=target.storage.options or None,
        run_id=run_id,
        data=validation.checkpoint_bytes,
        exported=validation.exported,
        task=target.task,
    )


def promote_candidate(target: ReleaseTarget, version: int) -> tuple[int | None, str | None]:
    """Move @champion to `version` if the registry's policy lets it: (champion after, refusal or None)."""
    from training.registry.versions import list_versions

    try:
        promote(target.model_name, version, target.registry)
        logger.info("%s v%s is now @%s", target.model_name, version, CHAMPION)
        return version, None
    except PromotionRefused as exc:
        champion = next(
            (v.version for v in list_versions(target.model_name, target.registry) if CHAMPION in v.aliases),
            None,
        )
        logger.warning(
            "%s v%s not promoted (@%s stays at %s): %s", target.model_name, version, CHAMPION, champion, exc
        )
        return champion, str(exc)


def release(
    target: ReleaseTarget,
    train_config: Mapping[str, Any],
    result: Mapping[str, Any],
    policy: GatePolicy | None = None,
    run_name: str = "train",
) -> ReleaseResult:
    """Every step of the flow for one finished training (see the module docstring)."""
    policy = policy or target.registry.policy
    checkpoint = result.get("best_ckpt_uri") or result["last_ckpt_uri"]
    run_id = log_training(target, train_config, result, run_name)
    validation = validate_candidate(checkpoint, target, policy)
    output = str(train_config.get("output", ""))
    report = write_release_report(target, validation.verdict, output, run_id, validation.exported)
    version = register_candidate(validation, target, run_id)
    champion, refusal = promote_candidate(target, version)
    return ReleaseResult(
        checkpoint=checkpoint,
        verdict=validation.verdict,
        version=version,
        champion=champion,
        promoted=refusal is None,
        refusal=refusal,
        report=report,
        run_id=run_id,
    )
