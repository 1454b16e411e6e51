"""
### vsr_train

Train the video super-resolution model (a window of frames in, the centre frame x4 out) on committed
`pairs/synthetic_clips_x4/<date>` partitions (product photos filmed by a known sub-pixel camera motion, built
by `sr_pairs` / `crisp pairs --recipe synthetic_clips_x4`), then release it as `crisp-vsr-x4`. The training
runs as a subprocess, `python -m training.fit.train --config <resolved yaml>` (or, with the settings'
`launch.kind: kubernetes`, as a Kubernetes Job: infra/README.md), from `training/configs/frame_fusion_x4.yaml`
(FrameFusion, 5 frames aligned by optical flow, 0.67M params, the CPU default).

**Trigger**: manual, with Params: `partitions` (dates, or ["all"]), `max_steps`, `devices`, free
`overrides` (`section.key=value`, as for `crisp train --set`), `model_name` (default crisp-vsr-x4) and
`gates` (stricter thresholds than the settings' `gates.vsr.*`: min_gain_db, max_temporal_ratio...).
Storage and S3 options come from the worker's Crisp settings; the run writes to
`<root>/runs/vsr_train/<run_id>/`.

**Schedule**: none by default; `CRISP_VSR_TRAIN_SCHEDULE=@weekly` on the scheduler retrains weekly.

Tasks (crisp/train_dag.py, the same DAG as sr_train): `check` -> `train` -> `validate` (centre-frame PSNR-Y
over bicubic and the temporal error on held-out clips, every frame from its own window; TorchScript export
parity; one 640 x 360 frame's latency; the HTML report) -> `register` (a new `crisp-vsr-x4` version,
@challenger) -> `promote` (@champion only under the configured policy). `crisp upscale VIDEO --model
models:/crisp-vsr-x4@champion` serves it.

Manual run: `airflow dags trigger vsr_train --conf '{"partitions": ["2026-11-24"]}'`, or without Airflow
`crisp train --task vsr --release`.
"""

from __future__ import annotations

import os
from pathlib import Path

from crisp.train_dag import shared_params, train_dag, yaml_train_config

CONFIG = Path(__file__).resolve().parents[1] / "training" / "configs" / "frame_fusion_x4.yaml"
SCHEDULE = os.environ.get("CRISP_VSR_TRAIN_SCHEDULE") or None
train_config = yaml_train_config(CONFIG)  # settings < frame_fusion_x4.yaml < Params < overrides

train_dag(
    "vsr_train",
    "vsr",
    shared_params("vsr", "crisp-vsr-x4", 3000, '{"min_gain_db": 0.5}'),
    train_config,
    doc_md=__doc__,
    tags=["crisp", "training", "video"],
    schedule=SCHEDULE,
)
