"""
### quality_train

Train the learned no-reference quality model (0-5 technical quality: sharpness, noise, compression,
exposure, colour; not aesthetics) on committed `pairs/quality_grid/<date>` partitions (the distortion
grid made by `sr_pairs` / `crisp pairs --recipe quality_grid`), then release it as `crisp-quality`.
The training runs as a subprocess, `python -m training.fit.train --config <resolved yaml>` (or, with the
settings' `launch.kind: kubernetes`, as a Kubernetes Job: infra/README.md), from
`training/configs/quality_net.yaml` (QualityNet, 0.53M params, the CPU default).

**Trigger**: manual, with Params: `partitions` (dates, or ["all"]), `max_steps`, `devices`, free
`overrides` (`section.key=value`, as for `crisp train --set`), `model_name` (default crisp-quality) and
`gates` (stricter thresholds than the settings' `gates.quality.*`: min_srcc, min_family_srcc,
min_pair_accuracy, latency_budget_ms...). Storage and S3 options come from the worker's Crisp settings;
the run writes to `<root>/runs/quality_train/<run_id>/`.

**Schedule**: none by default; `CRISP_QUALITY_TRAIN_SCHEDULE=@weekly` on the scheduler retrains weekly.

Tasks (crisp/train_dag.py, the same DAG as sr_train): `check` -> `train` -> `validate` (SRCC / PLCC /
KRCC overall and per family, pair accuracy, reject AUC on the frozen val grid, ONNX export parity and the
data side's latency; the HTML report) -> `register` (a new `crisp-quality` version with its ONNX file,
@challenger) -> `promote` (@champion only under the configured policy). Ingest scores new photos with
`models:/crisp-quality@champion` once it exists.

Manual run: `airflow dags trigger quality_train --conf '{"partitions": ["2026-11-20"]}'`, or without
Airflow `crisp train --task quality --release`.
"""

from __future__ import annotations

import os
from pathlib import Path

from crisp.train_dag import shared_params, train_dag, yaml_train_config

CONFIG = Path(__file__).resolve().parents[1] / "training" / "configs" / "quality_net.yaml"
SCHEDULE = os.environ.get("CRISP_QUALITY_TRAIN_SCHEDULE") or None
train_config = yaml_train_config(CONFIG)  # settings < quality_net.yaml < Params < overrides

train_dag(
    "quality_train",
    "quality",
    shared_params("quality", "crisp-quality", 3000, '{"min_srcc": 0.9}'),
    train_config,
    doc_md=__doc__,
    tags=["crisp", "training", "quality"],
    schedule=SCHEDULE,
)
