"""Architecture registry: a name and a scale in, a single-device `nn.Module` out.

Every arch takes a float tensor N x 3 x h x w in [0, 1] and returns N x 3 x (h*s) x (w*s) (s = 1: a restorer);
a multi-frame arch (`frame_fusion`, its `frames` > 1) takes N x 3*frames x h x w, the frames stacked.
`ARCHS` maps the config name to the class; `check_arch` validates a name, scale and overrides without
building anything; `build_arch(name, scale, **overrides)` validates them and
passes the overrides to the class (e.g. `residual=True` for espcn, `dim=48` for safmn).
Parallelism, precision and EMA are the trainer's business, not the arch's.
"""

from __future__ import annotations

import inspect

from torch import nn

from training.archs.bicubic import BicubicUpsampler
from training.archs.edsr_baseline import EDSRBaseline
from training.archs.espcn import ESPCN
from training.archs.ffdnet import FFDNet
from training.archs.frame_fusion import FrameFusion
from training.archs.safmn import SAFMN

ARCHS: dict[str, type[nn.Module]] = {
    "bicubic": BicubicUpsampler,
    "espcn": ESPCN,
    "edsr_baseline": EDSRBaseline,
    "safmn": SAFMN,
    "ffdnet": FFDNet,  # scale 1: the restorer (training/tasks/restore.py)
    "frame_fusion": FrameFusion,  # multi-frame video SR (training/tasks/vsr.py); frames=1 its single-frame twin
}


def check_arch(name: str, scale: int, overrides: dict[str, object] | None = None) -> None:
    """Raise ValueError unless `name` is known, supports `scale` and accepts every override."""
    if name not in ARCHS:
        raise ValueError(f"unknown arch {name!r}; known archs: {sorted(ARCHS)}")
    arch = ARCHS[name]
    scales = arch.supported_scales
    if scale not in scales:
        raise ValueError(f"arch {name!r} supports scales {list(scales)}, got {scale}")
    accepted = set(inspect.signature(arch.__init__).parameters) - {"self", "scale"}
    unknown = set(overrides or {}) - accepted
    if unknown:
        raise ValueError(
            f"arch {name!r} has no option(s) {sorted(unknown)}; its options are {sorted(accepted)}"
        )


def baseline_arch(scale: int) -> nn.Module:
    """What a model must beat without learning anything: Pillow bicubic at scale > 1; at scale 1 (a restorer)
    the degraded input itself."""
    return nn.Identity() if scale == 1 else build_arch("bicubic", scale)


def build_arch(name: str, scale: int, **overrides: object) -> nn.Module:
    """Instantiate arch `name` for upscaling factor `scale`; ValueError on anything unknown."""
    check_arch(name, scale, overrides)
    return ARCHS[name](scale=scale, **overrides)


def input_frames(model: nn.Module) -> int:
    """How many stacked frames `model` takes (1 for every single-image arch)."""
    return int(getattr(model, "frames", 1))
