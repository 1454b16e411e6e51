"""Cut an HR/LR pair into aligned tiles, so training never decodes a full-size original for a patch.

In: the modcropped HR (H x W), its LR (H/scale x W/scale), the scale and a `TileConfig`.
Out: a `TilingResult` with the tiles (HR top-left y, x; HR tile; LR tile) or, for an image below the
minimum size, no tiles and a `Reason.TOO_SMALL` skip reason with a detail message (never a silent drop).

Grid: each axis is split into the fewest tiles of at most `hr_tile` pixels that overlap by at least
`overlap`: ``n = ceil((length - overlap) / (hr_tile - overlap))`` tiles of one size (the smallest multiple of
the scale that reaches), spread evenly from border to border. The tiles cover the image once (plus the
overlap and at most `scale` px of rounding), where snapping a last full-size tile to the border covered
product photos 1.7x over; the price is tiles of varying size, never below ``hr_tile / 2`` along a split
axis (so pick `hr_tile` at least twice the training HR patch). Every start is a multiple of the scale, so
LR tile ``lr[y/s : (y+t)/s, x/s : (x+t)/s]`` covers exactly the HR tile's pixels. An axis of at most
`hr_tile` (but at least `min_hr_side`) gets one tile spanning the whole axis.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from pydantic import BaseModel, ConfigDict, model_validator

from schemas.reasons import Reason


class TileConfig(BaseModel):
    """Tile geometry in HR pixels. Defaults: 480 px tiles (a multiple of 2, 3 and 4), no overlap."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    hr_tile: int = 480
    overlap: int = 0
    min_hr_side: int = 96  # smaller images are skipped: too little content for a training crop

    @model_validator(mode="after")
    def _valid(self) -> TileConfig:
        if self.hr_tile < 8:
            raise ValueError(f"hr_tile={self.hr_tile} must be >= 8")
        if not 0 <= self.overlap < self.hr_tile:
            raise ValueError(f"overlap={self.overlap} must satisfy 0 <= overlap < hr_tile={self.hr_tile}")
        if not 1 <= self.min_hr_side <= self.hr_tile:
            raise ValueError(f"min_hr_side={self.min_hr_side} must be in 1..hr_tile={self.hr_tile}")
        return self


@dataclass(frozen=True)
class Tile:
    """One aligned tile: HR top-left (y, x) in HR pixels, the HR tile and the matching LR tile (views)."""

    y: int
    x: int
    hr: np.ndarray
    lr: np.ndarray


@dataclass(frozen=True)
class TilingResult:
    tiles: list[Tile] = field(default_factory=list)
    skip_reason: Reason | None = None
    skip_detail: str = ""


def tile_span(length: int, tile: int, overlap: int, scale: int = 1) -> tuple[int, list[int]]:
    """(tile size, starts) splitting an axis of `length` px (a multiple of `scale`) as the module says."""
    if length <= tile:
        return length, [0]
    count = -(-(length - overlap) // (tile - overlap))
    while True:  # rounding starts to the scale can eat into the overlap: grow the tile, then add one
        least = -(-(length + (count - 1) * overlap) // count)
        for size in range(-(-least // scale) * scale, tile + 1, scale):
            last = length - size
            starts = [(i * last // (count - 1)) // scale * scale for i in range(count)]
            if all(b - a <= size - overlap for a, b in zip(starts, starts[1:], strict=False)):
                return size, starts
        count += 1


def tile_pair(hr: np.ndarray, lr: np.ndarray, scale: int, config: TileConfig | None = None) -> TilingResult:
    """Tile an aligned pair. ValueError when the pair is not aligned (a bug upstream, not bad data)."""
    cfg = config or TileConfig()
    if scale < 1:
        raise ValueError(f"scale must be >= 1, got {scale}")
    if cfg.hr_tile % scale:
        raise ValueError(f"hr_tile={cfg.hr_tile} must be a multiple of scale {scale}; pick e.g. 480")
    height, width = hr.shape[:2]
    if height % scale or width % scale:
        raise ValueError(f"HR {height}x{width} is not a multiple of scale {scale}; use recipe.crop_hr first")
    if lr.shape[:2] != (height // scale, width // scale) or lr.shape[2:] != hr.shape[2:]:
        raise ValueError(f"LR shape {lr.shape} does not match HR {hr.shape} at scale {scale}")
    if min(height, width) < cfg.min_hr_side:
        detail = f"HR {height}x{width} is smaller than min_hr_side={cfg.min_hr_side}"
        return TilingResult(skip_reason=Reason.TOO_SMALL, skip_detail=detail)
    tile_h, starts_y = tile_span(height, cfg.hr_tile, cfg.overlap, scale)
    tile_w, starts_x = tile_span(width, cfg.hr_tile, cfg.overlap, scale)
    tiles = []
    for y in starts_y:
        for x in starts_x:
            ly, lx = y // scale, x // scale
            tiles.append(
                Tile(
                    y=y,
                    x=x,
                    hr=hr[y : y + tile_h, x : x + tile_w],
                    lr=lr[ly : ly + tile_h // scale, lx : lx + tile_w // scale],
                )
            )
    return TilingResult(tiles=tiles)
