"""
### sr_gan_train

Fine-tune a real-world x4 upscaler adversarially on committed `pairs/realworld_x4/<date>` partitions (made by
`sr_pairs` / `crisp pairs --recipe realworld_x4`), starting from its L1 twin, then release it as
`crisp-sr-x4-real`. The training runs as a subprocess, `python -m training.fit.train --config <resolved
yaml>` (or, with the settings' `launch.kind: kubernetes`, as a Kubernetes Job: infra/README.md), from
`training/configs/gan_x4_real.yaml` (residual ESPCN generator, PatchGAN critic with spectral norm;
L1 + MS-SSIM + feature matching + adversarial, no pretrained weights: training/fit/lit_gan.py).

**Trigger**: manual, with Params: `init_from` (the L1 twin's checkpoint, e.g. the `best.ckpt` of an
`sr_train` run with `data.recipe=realworld_x4` and the same arch; empty trains from scratch), `partitions`
(dates, or ["all"]), `max_steps`, `devices`, free `overrides` (`section.key=value`, as for
`crisp train --set`), `model_name` (default crisp-sr-x4-real) and `gates` (stricter thresholds than the
settings' `gates.sr_gan.*`). Storage and S3 options come from the worker's Crisp settings; the run writes
to `<root>/runs/sr_gan_train/<run_id>/`.

**Schedule**: none by default; `CRISP_SR_GAN_TRAIN_SCHEDULE=@weekly` on the scheduler retrains weekly.

Tasks (crisp/train_dag.py, the same DAG as sr_train): `check` -> `train` -> `validate` (PSNR-Y / SSIM-Y on
the recipe's held-out pairs next to bicubic and the champion, latency, TorchScript export parity at odd
sizes; the HTML report) -> `register` (a new `crisp-sr-x4-real` version, @challenger) -> `promote`
(@champion only under the configured policy). `crisp upscale --model models:/crisp-sr-x4-real@champion`
serves it.

Manual run: `airflow dags trigger sr_gan_train --conf '{"init_from": "s3://bucket/crisp/runs/sr_train/<run>/checkpoints/best.ckpt"}'`,
or without Airflow `crisp train --task sr_gan --set model.init_from=<checkpoint> --release`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from airflow.sdk import Param

from crisp.train_dag import report_photos, shared_overrides, shared_params, train_dag

CONFIG = Path(__file__).resolve().parents[1] / "training" / "configs" / "gan_x4_real.yaml"
SCHEDULE = os.environ.get("CRISP_SR_GAN_TRAIN_SCHEDULE") or None


def train_config(params: Mapping[str, Any], run_dir: str):
    """settings < gan_x4_real.yaml < init_from < the shared Params < overrides."""
    from crisp.commands.train import train_config_from_settings

    twin = [f"model.init_from={params['init_from']}"] if params.get("init_from") else []
    return train_config_from_settings(CONFIG, [*twin, *shared_overrides(params)], run_name=run_dir)


train_dag(
    "sr_gan_train",
    "sr_gan",
    {
        "init_from": Param(
            "", type="string", description="the L1 twin's checkpoint URI (empty: from scratch)"
        ),
        **shared_params("sr_gan", "crisp-sr-x4-real", 10000, '{"margin_db": 0.2}'),
    },
    train_config,
    doc_md=__doc__,
    tags=["crisp", "training", "sr_gan"],
    schedule=SCHEDULE,
    photos=report_photos,
)
