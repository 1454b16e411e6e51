"""
### matte_train

Train the background-removal model (an alpha matte of the product in a photo) on committed
`pairs/matte_composites/<date>` partitions (white-background product photos matted and composited over new
backgrounds by `sr_pairs` / `crisp pairs --recipe matte_composites`), then release it as `crisp-matte`.
The training runs as a subprocess, `python -m training.fit.train --config <resolved yaml>` (or, with the
settings' `launch.kind: kubernetes`, as a Kubernetes Job: infra/README.md), from
`training/configs/matte_net.yaml` (MatteNet, 1.23M params, the CPU default).

**Trigger**: manual, with Params: `partitions` (dates, or ["all"]), `max_steps`, `devices`, free
`overrides` (`section.key=value`, as for `crisp train --set`), `model_name` (default crisp-matte) and
`gates` (stricter thresholds than the settings' `gates.matte.*`: min_iou, max_mae, latency_budget_ms...).
Storage and S3 options come from the worker's Crisp settings; the run writes to
`<root>/runs/matte_train/<run_id>/`.

**Schedule**: none by default; `CRISP_MATTE_TRAIN_SCHEDULE=@weekly` on the scheduler retrains weekly.

Tasks (crisp/train_dag.py, the same DAG as sr_train): `check` -> `train` -> `validate` (IoU, MAE, SAD,
gradient error and boundary F on held-out composites, per background kind; ONNX export parity and the
served latency at 1000 px; the HTML report) -> `register` (a new `crisp-matte` version with its ONNX file,
@challenger) -> `promote` (@champion only under the configured policy). `crisp cutout` serves
`models:/crisp-matte@champion`.

Manual run: `airflow dags trigger matte_train --conf '{"partitions": ["2026-11-22"]}'`, or without
Airflow `crisp train --task matte --release`.
"""

from __future__ import annotations

import os
from pathlib import Path

from crisp.train_dag import shared_params, train_dag, yaml_train_config

CONFIG = Path(__file__).resolve().parents[1] / "training" / "configs" / "matte_net.yaml"
SCHEDULE = os.environ.get("CRISP_MATTE_TRAIN_SCHEDULE") or None
train_config = yaml_train_config(CONFIG)  # settings < matte_net.yaml < Params < overrides

train_dag(
    "matte_train",
    "matte",
    shared_params("matte", "crisp-matte", 3000, '{"min_iou": 0.95}'),
    train_config,
    doc_md=__doc__,
    tags=["crisp", "training", "matte"],
    schedule=SCHEDULE,
)
