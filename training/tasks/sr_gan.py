"""The GAN fine-tuning task: real-world LR/HR pairs in, an x4 upscaler whose output looks sharp out.

In: nothing. Out: `TASK`, the `Task` record (training/tasks/__init__.py). The generator is an SR arch and
its product an upscaler, so the SR task's pieces serve it unchanged (pair index of the `realworld_x*`
recipes, `SRDataModule`, `validate`, TorchScript export at odd sizes, the uint8 pyfunc, tiled serving by
`crisp upscale`). What is its own: `GANModule` with `GanModelConfig` (training/fit/lit_gan.py: critic,
weight-free perceptual and adversarial losses, the generator started from its L1 twin), the gate policy
`GanGatePolicy` (settings `gates.sr_gan.*`, training/gates/gan_gates.py) with its measurements against the L1
twin on the same held-out pairs (training/gates/gan_validate.py, run inside the SR validator) and the
registered name `crisp-sr-x4-real`.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial

from training.fit.lit_gan import GanModelConfig, GANModule
from training.gates.gan_gates import GanGatePolicy
from training.gates.gan_validate import measure_against_twin
from training.gates.validate import validate
from training.tasks.sr import TASK as SR_TASK

TASK = replace(
    SR_TASK,
    name="sr_gan",
    model_config=GanModelConfig,
    lit_module=GANModule,
    policy=GanGatePolicy,
    validate=partial(validate, task_gates=measure_against_twin),
    registered_as="crisp-sr-x{scale}-real",
)
