"""Upscale an image of any size with an SR model: overlapping LR tiles, centres stitched, bounded memory.

In: an SR `nn.Module`, an image (PIL or uint8 numpy: HxW, HxWx3 or HxWx4), its scale, the tile size in
LR pixels (default 256) and the overlap (default 16), a device ("auto" = CUDA when present). Out:
`upscale_bands` yields the uint8 result as horizontal bands, top to bottom (a writer can stream them to
disk, so a 4000 x 4000 input never needs its 16000 x 16000 result in RAM); `upscale_image` assembles them
into one (H*s) x (W*s) x 3 array (x 4 with alpha), or into a caller's `out` array. A multi-frame model takes
its window of frames stacked along the channels (`upscale_window`), tiled like one image; `upscale_video`
runs either kind on every frame of a video file into an H.264 MP4 (`pipeline.video.stream`).

Tiling: the LR image is cut into cores of `tile - 2 * overlap` pixels per axis; each core is processed
inside a `tile`-sized window shifted inward at the image borders, so every window has the same shape
(tiles batch on GPU) and every core has at least `overlap` pixels of real context on each inner side.
Only the core of each output is kept. For a model whose receptive field radius (in LR pixels) is at most
`overlap` (ESPCN: 4, with its bicubic skip: 4; the bicubic arch: 2) the stitched result equals the
whole-image result up to float rounding: after quantization to 8 bits, at most 1 level apart
(tests/training/serve/test_upscale.py checks max abs diff <= 1/255). Deeper models (EDSR-baseline, SAFMN)
see a truncated context near core edges, so their seams are close to, not exactly, whole-image output.

Memory: one batch of float tiles (batch x 3 x (tile*s)^2 floats; 12.6 MB per 256-px tile at x4) plus one
uint8 band; no whole-image tensor at HR is ever built. Alpha is upscaled with Pillow bicubic, band by
band with 2 rows of context (exactly Pillow's whole-image result). Tiles are batched within a band.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn


class UpscaleConfig(BaseModel):
    """Serving knobs. batch_size None = 8 tiles per forward on GPU, 1 on CPU (no speed-up there)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tile: int = Field(default=256, ge=8)
    overlap: int = Field(default=16, ge=0)
    batch_size: int | None = Field(default=None, ge=1)
    device: str = "auto"

    @model_validator(mode="after")
    def _core_left(self) -> UpscaleConfig:
        if self.tile <= 2 * self.overlap:
            raise ValueError(
                f"tile ({self.tile}) must exceed 2 * overlap ({2 * self.overlap}): no core would remain"
            )
        return self


@dataclass(frozen=True)
class Span:
    """One axis of a tile: the LR window read [start, end) and the core it owns [core_start, core_end)."""

    start: int
    end: int
    core_start: int
    core_end: int


def axis_spans(size: int, tile: int, overlap: int) -> list[Span]:
    """Windows of equal length min(tile, size) whose cores partition [0, size)."""
    if size <= tile:
        return [Span(0, size, 0, size)]
    core = tile - 2 * overlap
    spans, start = [], 0
    while start < size:
        end = min(start + core, size)
        window = max(0, min(start - overlap, size - tile))
        spans.append(Span(window, window + tile, start, end))
        start = end
    return spans


def resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def to_rgb_and_alpha(image: Image.Image | np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """uint8 HxWx3 RGB plus the HxW alpha channel when the image has one."""
    if isinstance(image, Image.Image):
        if image.mode == "P" and "transparency" in image.info:
            image = image.convert("RGBA")
        if image.mode not in ("RGB", "RGBA"):
            image = image.convert("RGB")
        array = np.asarray(image)
    else:
        array = np.asarray(image)
        if array.dtype != np.uint8:
            raise ValueError(
                f"upscale expects a uint8 image, got {array.dtype}; convert it (e.g. round and clip)"
            )
    if array.ndim == 2:
        return np.repeat(array[..., None], 3, axis=2), None
    if array.ndim == 3 and array.shape[2] == 3:
        return array, None
    if array.ndim == 3 and array.shape[2] == 4:
        return array[..., :3], array[..., 3]
    if array.ndim == 3 and array.shape[2] > 4 and array.shape[2] % 3 == 0:
        return array, None  # RGB frames stacked along the channels, for a multi-frame model
    raise ValueError(
        f"upscale expects HxW, HxWx3 or HxWx4 pixels (or stacked frames), got shape {array.shape}"
    )


def _run_batch(model: nn.Module, windows: list[np.ndarray], device: torch.device) -> np.ndarray:
    batch = torch.from_numpy(np.stack(windows)).to(device, non_blocking=True)
    batch = batch.permute(0, 3, 1, 2).float().div_(255.0)
    with torch.inference_mode():
        result = model(batch).float().clamp_(0.0, 1.0).mul_(255.0).round_().to(torch.uint8)
        return result.permute(0, 2, 3, 1).cpu().numpy()


def _alpha_band(alpha: np.ndarray, rows: Span, scale: int) -> np.ndarray:
    """Pillow-bicubic upscale of the alpha rows of one band, exact: 2 rows of context cover the kernel."""
    top, bottom = max(rows.core_start - 2, 0), min(rows.core_end + 2, alpha.shape[0])
    strip = Image.fromarray(np.ascontiguousarray(alpha[top:bottom]))
    upscaled = np.asarray(
        strip.resize((alpha.shape[1] * scale, (bottom - top) * scale), Image.Resampling.BICUBIC)
    )
    return upscaled[(rows.core_start - top) * scale : (rows.core_end - top) * scale]


def upscale_bands(
    model: nn.Module,
    image: Image.Image | np.ndarray,
    scale: int,
    tile: int = 256,
    overlap: int = 16,
    device: str | torch.device | None = "auto",
    batch_size: int | None = None,
    on_tile: Callable[[int], None] | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (first output row, band) top to bottom; a band is uint8 (core rows * s) x (W * s) x C.

    Memory: one band (at most `tile - 2 * overlap` LR rows, times the scale, times the output width)
    plus one batch of tiles, whatever the image height: a caller can stream the bands to a file.
    """
    config = UpscaleConfig(tile=tile, overlap=overlap, batch_size=batch_size)
    if scale < 1:
        raise ValueError(f"scale must be >= 1, got {scale}")
    rgb, alpha = to_rgb_and_alpha(image)
    height, width = rgb.shape[:2]
    target = resolve_device(device)
    per_batch = config.batch_size or (8 if target.type == "cuda" else 1)
    model = model.to(target).eval()
    columns = axis_spans(width, tile, overlap)
    for ys in axis_spans(height, tile, overlap):
        band = np.empty(
            ((ys.core_end - ys.core_start) * scale, width * scale, 3 if alpha is None else 4), np.uint8
        )
        for first in range(0, len(columns), per_batch):
            group = columns[first : first + per_batch]
            windows = [np.ascontiguousarray(rgb[ys.start : ys.end, xs.start : xs.end]) for xs in group]
            for xs, window, result in zip(group, windows, _run_batch(model, windows, target), strict=True):
                expected = (window.shape[0] * scale, window.shape[1] * scale)
                if result.shape[:2] != expected:
                    raise ValueError(
                        f"model returned {result.shape[:2]} for a {window.shape[:2]} tile, not {expected}"
                    )
                band[:, xs.core_start * scale : xs.core_end * scale, :3] = result[
                    (ys.core_start - ys.start) * scale : (ys.core_end - ys.start) * scale,
                    (xs.core_start - xs.start) * scale : (xs.core_end - xs.start) * scale,
                ]
            if on_tile is not None:
                on_tile(len(group))
        if alpha is not None:
            band[..., 3] = _alpha_band(alpha, ys, scale)
        yield ys.core_start * scale, band


def output_shape(image: Image.Image | np.ndarray, scale: int) -> tuple[int, int, int]:
    """(H*s, W*s, 3 or 4) of `upscale_image(image, scale)`."""
    if isinstance(image, Image.Image):
        alpha = "A" in image.getbands() or (image.mode == "P" and "transparency" in image.info)
        return image.height * scale, image.width * scale, 4 if alpha else 3
    array = np.asarray(image)
    return array.shape[0] * scale, array.shape[1] * scale, 4 if array.ndim == 3 and array.shape[2] == 4 else 3


def upscale_window(model: nn.Module, frames: list[np.ndarray], scale: int, **options) -> np.ndarray:
    """The centre frame of `frames` (as many uint8 HxWx3 frames as the model takes) super-resolved by a
    multi-frame model: the frames stacked along the channels and tiled like one image, after aligning the
    neighbours on the centre (pipeline/video/align.py) for a model that takes its window `prealigned`."""
    if getattr(model, "prealigned", False):
        from pipeline.video.align import align_window

        frames = align_window(frames)
    return upscale_image(model, np.concatenate(frames, axis=2), scale, **options)


def upscale_image(
    model: nn.Module,
    image: Image.Image | np.ndarray,
    scale: int,
    tile: int = 256,
    overlap: int = 16,
    device: str | torch.device | None = "auto",
    batch_size: int | None = None,
    out: np.ndarray | None = None,
    on_tile: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Tiled super-resolution of `image` by `scale`; returns (or fills `out`) uint8 (H*s) x (W*s) x C."""
    shape = output_shape(image, scale)
    if out is None:
        out = np.empty(shape, dtype=np.uint8)
    elif out.shape != shape or out.dtype != np.uint8:
        raise ValueError(f"out must be a uint8 array of shape {shape}, got {out.dtype} {out.shape}")
    for top, band in upscale_bands(model, image, scale, tile, overlap, device, batch_size, on_tile):
        out[top : top + band.shape[0]] = band
    return out


def count_tiles(height: int, width: int, tile: int = 256, overlap: int = 16) -> int:
    """How many tiles `upscale_image` runs for an LR image of this size (for progress bars)."""
    return len(axis_spans(height, tile, overlap)) * len(axis_spans(width, tile, overlap))


def upscale_video(
    model: nn.Module,
    source,
    target,
    scale: int,
    tile: int = 256,
    overlap: int = 16,
    device: str | torch.device | None = "auto",
    batch_size: int | None = None,
    bar=None,
):
    """Every frame of the video file `source` upscaled into the H.264 MP4 `target`, its timestamps and
    audio kept (`pipeline.video.stream.transcode_frames`): by a single-frame model frame by frame, by a
    multi-frame one (`training.archs.input_frames` > 1) over a sliding window of that many frames.
    `bar` (a tqdm bar) counts the tiles. ValueError for a file that is not a readable video; returns the
    `TranscodeResult`."""
    from pipeline.video.stream import transcode_frames
    from training.archs import input_frames

    def size_bar(width: int, height: int, frames: int) -> None:
        if bar is not None:
            bar.total += count_tiles(height, width, tile, overlap) * max(frames, 1)
            bar.refresh()

    options = {"tile": tile, "overlap": overlap, "device": device, "batch_size": batch_size,
               "on_tile": bar.update if bar is not None else None}  # fmt: skip
    window = input_frames(model)

    def frame_result(frames: list[np.ndarray]) -> np.ndarray:
        return (
            upscale_window(model, frames, scale, **options)
            if window > 1
            else upscale_image(model, frames[0], scale, **options)
        )

    return transcode_frames(source, target, frame_result, scale, on_open=size_bar, window=window)
