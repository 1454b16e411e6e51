"""
### sr_train

Train a super-resolution model on committed pair partitions. The training runs as a subprocess,
`python -m training.fit.train --config <resolved yaml>`, so the Airflow worker only waits; with the settings'
`launch.kind: kubernetes` it runs as a Kubernetes Job on GPU nodes instead (infra/k8s/train-job.yaml,
infra/README.md). Lightning DDP re-launches the subprocess per extra device.

**Trigger**: manual, with Params: `arch` (espcn, edsr_baseline, safmn), `scale` (2, 3, 4), `recipe`
(e.g. bicubic_x4, realworld_x4), `partitions` (dates, or ["all"]), `max_steps`, `devices`, and free
`overrides` (`section.key=value`, as for `crisp train --set`). The base config is
`training/configs/<arch>_x<scale>.yaml` (else `<arch>_x4.yaml` with the scale overridden). Storage root and
S3 options come from the worker's Crisp settings (`CRISP_CONFIG` / `CRISP_ROOT`); the run writes to
`<root>/runs/sr_train/<run_id>/` (checkpoints/last.ckpt, best.ckpt, logs/, result.json).

**Schedule**: none by default. Set `CRISP_SR_TRAIN_SCHEDULE=@weekly` on the scheduler for a weekly retrain
with the default Params (every committed partition), `catchup=False`.

Tasks (crisp/train_dag.py: the release flow of training/registry/release.py, one step per task, the same DAG as
quality_train; `crisp demo` and `crisp train --release` run the same steps in one process): `check` (before anything starts: the `gates`
Param may only tighten the settings' policy `gates.sr.*` (a looser value fails here, naming it); arch and
options, recipe/scale match, committed and large enough data, devices this worker has) -> `train` (the
subprocess; its XCom is the TrainResult; a retry resumes from the run's `last.ckpt`, mid-epoch included)
-> `validate` (logs the training as an MLflow run: resolved config as params, curves, the pair partitions
as a dataset input; then safe load, golden pass, the policy's benchmark sets and the pair test split
against bicubic and the current `@champion`, latency, export parity; the HTML report goes to the run's
output and the MLflow run) -> `register` (a new version of `model_name` logged into the training run,
`@challenger`) -> `promote` (the registry moves `@champion` only when the recorded verdict passes under the
configured policy; else this task fails with the reasons and `@champion` stays).

Manual run: `airflow dags trigger sr_train --conf '{"arch": "espcn", "scale": 4, "partitions": ["2026-11-20"]}'`,
or without Airflow `crisp train --config training/configs/espcn_x4.yaml --set data.partitions=[2026-11-20]`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from airflow.sdk import Param

from crisp.train_dag import report_photos, shared_overrides, shared_params, train_dag

REPO = Path(__file__).resolve().parents[1]
SCHEDULE = os.environ.get("CRISP_SR_TRAIN_SCHEDULE") or None


def train_config(params: dict[str, Any], run_dir: str):
    """The TrainConfig a run trains with: settings < base YAML < Params < overrides (the same merge as
    `crisp train` and `python -m training.fit.train`). Raises ValueError."""
    from crisp.commands.train import train_config_from_settings

    arch, scale = params["arch"], int(params["scale"])
    configs = REPO / "training" / "configs"
    base = next(
        (p for p in (configs / f"{arch}_x{scale}.yaml", configs / f"{arch}_x4.yaml") if p.is_file()), None
    )
    overrides = [
        f"model.arch={arch}",
        f"model.scale={scale}",
        f"data.recipe={params['recipe']}",
        *shared_overrides(params),  # after the arch/recipe ones: a free override still wins
    ]
    return train_config_from_settings(base, overrides, run_name=run_dir)


train_dag(
    "sr_train",
    "sr",
    {
        "arch": Param("espcn", type="string", description="espcn | edsr_baseline | safmn"),
        "scale": Param(4, type="integer", enum=[2, 3, 4], description="upscaling factor"),
        "recipe": Param("bicubic_x4", type="string", description="pair recipe; its scale must equal `scale`"),
        **shared_params("sr", "crisp-sr", 20000, '{"margin_db": 0.5}'),
    },
    train_config,
    doc_md=__doc__,
    tags=["crisp", "training", "sr"],
    schedule=SCHEDULE,
    photos=report_photos,
)
