"""Damage levels, the optional conditioning input of a restorer (FFDNet's noise-level map, FBCNN's quality).

In: level names (pair index columns of schemas/pairs.py that record the damage a recipe applied, read from
its params, never measured) and their raw values (an array per name, or one number from `crisp restore
--sigma` / `--jpeg-quality`). Out: `normalize(name, values)`, float32 levels in [0, 1] where 0 is no damage
and 1 the recipes' worst (noise sigma 75, JPEG quality 10); `UNKNOWN`, the value a hidden level takes (a
conditioned restorer trained with hidden levels also runs blind); `WithLevels(net, given)`, a module
that feeds fixed levels ({name: raw value}) to a conditioned net, so the tiled serving loop calls it like
any restorer.

A level is one number per image, broadcast over the image by the arch: the recipes draw one sigma and one
quality per tile, and a command line gives one per photo.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn

# name -> (raw value of "no damage", raw value of level 1: the recipes' worst)
LEVELS: Mapping[str, tuple[float, float]] = {
    "noise_sigma": (0.0, 75.0),  # 8-bit levels; Poisson noise is recorded as its Gaussian equivalent
    "jpeg_quality": (100.0, 10.0),  # lowest JPEG quality applied; 100 = none
}
UNKNOWN = -1.0  # outside [0, 1], so a level the net is not told cannot be read as "no damage"


def check_levels(names: Sequence[str]) -> tuple[str, ...]:
    """`names` as a tuple; ValueError for an unknown or repeated name."""
    names = tuple(names)
    unknown = [n for n in names if n not in LEVELS]
    if unknown:
        raise ValueError(f"unknown damage level(s) {unknown}; known: {sorted(LEVELS)}")
    if len(set(names)) != len(names):
        raise ValueError(f"damage levels repeat a name: {list(names)}")
    return names


def normalize(name: str, values: np.ndarray | float) -> np.ndarray:
    """Raw recorded values of level `name` -> float32 in [0, 1] (clipped: a sigma over 75 reads as 1)."""
    clean, worst = LEVELS[name]
    scaled = (np.asarray(values, dtype=np.float64) - clean) / (worst - clean)
    return np.clip(scaled, 0.0, 1.0).astype(np.float32)


class WithLevels(nn.Module):
    """`net(x, levels)` with fixed levels: the given names get their normalized value, the rest `UNKNOWN`.

    ValueError when `net` reads no levels or none of the given ones (it would ignore them silently)."""

    def __init__(self, net: nn.Module, given: Mapping[str, float]) -> None:
        super().__init__()
        names = tuple(getattr(net, "levels", ()))
        ignored = sorted(set(given) - set(names))
        if ignored:
            reads = f"reads only {list(names)}" if names else "was trained blind (no level input)"
            raise ValueError(f"the model {reads}: it cannot use {ignored}")
        self.net = net
        values = [float(normalize(n, given[n])) if n in given else UNKNOWN for n in names]
        self.register_buffer("values", torch.tensor([values], dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x, self.values.to(x.dtype).expand(x.shape[0], -1))
