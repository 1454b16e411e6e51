"""The restoration task: same-size degraded/clean pairs in, a restorer (denoise, de-JPEG, deblur) out.

In: nothing. Out: `TASK`, the `Task` record (training/tasks/__init__.py). A restorer is an image-to-image
model at scale 1, so it reuses the SR pieces unchanged: the pair index (schemas/pairs.py) of the
`restore_x1_*` recipes (pipeline/degrade/restore.py), `SRModule` (L1, PSNR-Y/SSIM-Y validation, EMA),
`SRDataModule`, `validate` (where the baseline role at scale 1 is the degraded input itself,
`training.archs.baseline_arch`), the TorchScript export checked at odd sizes, the uint8 pyfunc and the
tiled serving path (`crisp restore`). What is its own: the arch default (`ffdnet`, training/archs/ffdnet.py),
the gate policy (`RestoreGatePolicy`, settings `gates.restore.*`: margin over the degraded input on the
held-out pairs) and the registered names: one model per kind of damage (`RESTORE_KINDS`, what `crisp restore
--task` picks), `crisp-restore` for the mixed chain (`auto`).
"""

from __future__ import annotations

from dataclasses import replace

from training.gates.policy import RestoreGatePolicy
from training.tasks import RESTORE_KINDS
from training.tasks.sr import TASK as SR_TASK

TASK = replace(
    SR_TASK,
    name="restore",
    policy=RestoreGatePolicy,
    name_by_recipe={recipe: name for recipe, name in RESTORE_KINDS.values()},
)
