"""
### restore_train

Train a restorer (denoise, de-JPEG, deblur at scale 1) on committed `pairs/restore_x1_<kind>/<date>`
partitions (made by `sr_pairs` / `crisp pairs --recipe restore_x1_noise`), then release it under its kind's
name (`crisp-restore-denoise`, `-dejpeg`, `-deblur`; `crisp-restore` for restore_x1_mixed). The training runs
as a subprocess, `python -m training.fit.train --config <resolved yaml>` (or, with the settings' `launch.kind:
kubernetes`, as a Kubernetes Job: infra/README.md), from `training/configs/ffdnet_x1.yaml` (FFDNet-style,
blind, 0.38M params, restore_x1_noise pairs).

**Trigger**: manual, with Params: `partitions` (dates, or ["all"]), `max_steps`, `devices`, free `overrides`
(`section.key=value`, as for `crisp train --set`; e.g. `data.recipe=restore_x1_jpeg` for a de-JPEG model),
`model_name` (default '': the recipe's name, as above) and `gates` (stricter thresholds than the settings'
`gates.restore.*`: margin_db over the degraded input, champion_tolerance_db, latency_budget_ms...). Storage
and S3 options come from the worker's Crisp settings; the run writes to `<root>/runs/restore_train/<run_id>/`.

**Schedule**: none by default; `CRISP_RESTORE_TRAIN_SCHEDULE=@weekly` on the scheduler retrains weekly.

Tasks (crisp/train_dag.py, the same DAG as sr_train): `check` -> `train` -> `validate` (PSNR-Y / SSIM-Y
on the recipe's held-out pairs next to the degraded input and the champion, latency, TorchScript export
parity at odd sizes; the HTML report) -> `register` (a new version, @challenger) ->
`promote` (@champion only under the configured policy). `crisp restore --task <kind>` serves the champion.

Manual run: `airflow dags trigger restore_train --conf '{"partitions": ["2026-11-20"]}'`, or without
Airflow `crisp train --task restore --release`.
"""

from __future__ import annotations

import os
from pathlib import Path

from crisp.train_dag import report_photos, shared_params, train_dag, yaml_train_config

CONFIG = Path(__file__).resolve().parents[1] / "training" / "configs" / "ffdnet_x1.yaml"
SCHEDULE = os.environ.get("CRISP_RESTORE_TRAIN_SCHEDULE") or None
train_config = yaml_train_config(CONFIG)  # settings < ffdnet_x1.yaml < Params < overrides

train_dag(
    "restore_train",
    "restore",
    shared_params("restore", "", 20000, '{"margin_db": 2.0}'),
    train_config,
    doc_md=__doc__,
    tags=["crisp", "training", "restore"],
    schedule=SCHEDULE,
    photos=report_photos,  # before/after crops: the photo degraded by the recipe, then restored
)
