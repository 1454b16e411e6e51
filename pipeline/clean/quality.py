"""Quality metrics: cheap, per-image numbers computed once at ingest, and the flags they raise.

In: normalized pixels (HxWx3 uint8), the stored format and, for JPEG, the stored bytes. Out:
`QualityMetrics` (plain floats, units below) from `measure`, and the flag names from `flags` given
`QualityThresholds`. Global statistics are taken on a copy whose long side is at most 512 px (a few ms
for a 2 MP photo, integer box reduction); blockiness and noise need the original pixel grid, so they
use a full-resolution centre crop of at most 256x256. Perceived brightness follows cleanvision
(sqrt(0.241 R^2 + 0.691 G^2 + 0.068 B^2)), luma is ITU-R 601-2.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from pipeline.clean.config import QualityThresholds

ANALYSIS_LONG_SIDE = 512
CROP_SIDE = 256
FLAG_NAMES = (
    "dark",
    "light",
    "blurry",
    "low_information",
    "low_contrast",
    "grayscale",
    "odd_aspect",
    "odd_size",
    "noisy",
    "low_jpeg_quality",
)
_NEAR_WHITE = 235  # every channel at least this counts as white background
_NOISE_BLOCK = 16
# IJG (libjpeg) standard luminance and chrominance tables, natural order, as Pillow reports them.
_IJG_TABLES = np.array(
    [
        [16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
         14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
         49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99],
        [17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99,
         47, 66, 99, 99, 99, 99, 99, 99] + [99] * 32,
    ],
    dtype=np.int64,
)  # fmt: skip
_QUALITIES = np.arange(1, 101)
_SCALES = np.where(_QUALITIES < 50, 5000 // _QUALITIES, 200 - 2 * _QUALITIES)
# IJG tables for every quality 1..100: shape (100, 2, 64), clamped to baseline 1..255.
_SCALED_TABLES = np.clip((_IJG_TABLES[None] * _SCALES[:, None, None] + 50) // 100, 1, 255)


@dataclass(frozen=True)
class QualityMetrics:
    """Per-image quality numbers (stored in the index; the flags are derived from them).

    sharpness: variance of the 4-neighbour Laplacian of luma, gray levels^2 (higher = sharper).
    brightness: mean perceived brightness, 0..1.
    dark_score: 99th percentile of perceived brightness, 0..1 (low = dark; cleanvision's dark score).
    light_score: 1 - 5th percentile of perceived brightness, 0..1 (low = washed out).
    contrast: RMS contrast, standard deviation of luma / 255, 0..0.5.
    colorfulness: Hasler-Suesstrunk M on 0..255 values (0 = gray, about 30 = moderately colourful).
    channel_spread: mean of max(R,G,B) - min(R,G,B), gray levels (about 0 for gray images).
    entropy: Shannon entropy of the RGB histogram (Pillow's `Image.entropy`, 768 bins, as cleanvision
        computes it), bits, 0..9.6.
    jpeg_quality: IJG quality 1..100 that best explains the stored JPEG's quantization tables, or
        None when the stored bytes are not JPEG.
    blockiness: mean luma step across 8x8 block edges / mean step inside blocks (floored at half a
        gray level), on the full-resolution centre crop; about 1 = no grid, higher = blockier.
    noise_sigma: Immerkaer noise standard deviation of the green channel (the one closest to luma,
        without luma's averaging of independent channel noise), gray levels, on the full-resolution
        centre crop: the median over 16x16 blocks that are not clipped.
    white_background_ratio: share of pixels in the outer 3 % border band with every channel >= 235, 0..1.
    aspect_ratio: width / height.
    """

    sharpness: float
    brightness: float
    dark_score: float
    light_score: float
    contrast: float
    colorfulness: float
    channel_spread: float
    entropy: float
    jpeg_quality: float | None
    blockiness: float
    noise_sigma: float
    white_background_ratio: float
    aspect_ratio: float


def measure(
    pixels: np.ndarray,
    stored_format: str,
    stored_bytes: bytes | None = None,
    image: Image.Image | None = None,
) -> QualityMetrics:
    """All metrics of one normalized image (see `QualityMetrics` for units); `image`, the same pixels as
    an RGB Pillow image when the caller has one (`NormalizedImage.image`), saves a conversion."""
    check_pixels(pixels)
    if stored_format == "jpeg" and stored_bytes is None:
        raise ValueError("stored_format is 'jpeg': pass stored_bytes so the JPEG quality can be estimated")
    height, width, _ = pixels.shape
    if image is not None and (
        not isinstance(image, Image.Image) or image.mode != "RGB" or image.size != (width, height)
    ):
        raise ValueError(f"image must be the RGB Pillow image of the {width}x{height} pixels, got {image!r}")
    small_image = _analysis_copy(pixels, image)
    small = np.asarray(small_image)
    red, green, blue = (small[..., channel].astype(np.float32) for channel in range(3))
    luma = _luma(red, green, blue)
    perceived = np.sqrt(0.241 * red * red + 0.691 * green * green + 0.068 * blue * blue).ravel() / 255.0
    last = perceived.size - 1
    p5_index, p99_index = int(0.05 * last), int(0.99 * last)
    p5, p99 = np.partition(perceived, (p5_index, p99_index))[[p5_index, p99_index]]
    lowest = np.minimum(np.minimum(small[..., 0], small[..., 1]), small[..., 2])
    highest = np.maximum(np.maximum(small[..., 0], small[..., 1]), small[..., 2])

    degradation = _degradation(luma, pixels)
    return QualityMetrics(
        sharpness=degradation.sharpness,
        brightness=float(perceived.mean()),
        dark_score=float(min(p99, 1.0)),
        light_score=float(1.0 - min(p5, 1.0)),
        contrast=float(luma.std() / 255.0),
        colorfulness=_colorfulness(red, green, blue),
        channel_spread=float((highest - lowest).mean()),
        entropy=float(small_image.entropy()),  # Pillow's, as cleanvision uses it
        jpeg_quality=estimate_jpeg_quality(stored_bytes)
        if stored_format == "jpeg" and stored_bytes
        else None,
        blockiness=degradation.blockiness,
        noise_sigma=degradation.noise_sigma,
        white_background_ratio=_white_border_ratio(lowest),
        aspect_ratio=width / height,
    )


@dataclass(frozen=True)
class DegradationMetrics:
    """The subset of `QualityMetrics` that measures degradation (the pairs job labels LR tiles with it)."""

    sharpness: float
    noise_sigma: float
    blockiness: float


def measure_degradation(pixels: np.ndarray) -> DegradationMetrics:
    """`measure`'s sharpness, noise_sigma and blockiness of HxWx3 uint8 pixels, equal to its values, at a
    third of its cost (no brightness, colour, entropy or border statistics)."""
    check_pixels(pixels)
    small = np.asarray(_analysis_copy(pixels))
    red, green, blue = (small[..., channel].astype(np.float32) for channel in range(3))
    return _degradation(_luma(red, green, blue), pixels)


def _degradation(small_luma: np.ndarray, pixels: np.ndarray) -> DegradationMetrics:
    crop = _centre_crop(pixels)
    crop_luma = _luma(crop[..., 0], crop[..., 1], crop[..., 2])
    return DegradationMetrics(
        sharpness=_laplacian_variance(small_luma),
        noise_sigma=_noise_sigma(crop[..., 1]),
        blockiness=_blockiness(crop_luma),
    )


def flags(metrics: QualityMetrics, width: int, height: int, thresholds: QualityThresholds) -> list[str]:
    """Names of the quality flags raised, in `FLAG_NAMES` order (empty when the image looks fine)."""
    raised = {
        "dark": metrics.dark_score < thresholds.dark_max_p99_brightness,
        "light": metrics.light_score < thresholds.light_max_inverted_p5_brightness,
        "blurry": metrics.sharpness < thresholds.blurry_max_sharpness,
        "low_information": metrics.entropy < thresholds.low_information_max_entropy,
        "low_contrast": metrics.contrast < thresholds.low_contrast_max_rms,
        "grayscale": metrics.channel_spread <= thresholds.grayscale_max_channel_spread,
        "odd_aspect": min(width / height, height / width) < thresholds.odd_aspect_min_ratio,
        "odd_size": min(width, height) < thresholds.odd_size_min_side
        or width * height > thresholds.odd_size_max_pixels,
        "noisy": metrics.noise_sigma > thresholds.noisy_min_sigma,
        "low_jpeg_quality": metrics.jpeg_quality is not None
        and metrics.jpeg_quality < thresholds.low_jpeg_quality_max,
    }
    return [name for name in FLAG_NAMES if raised[name]]


def estimate_jpeg_quality(jpeg_bytes: bytes) -> float | None:
    """IJG quality (1..100) whose scaled standard tables are closest to the file's; None if unreadable."""
    try:
        with Image.open(io.BytesIO(jpeg_bytes), formats=("JPEG",)) as image:
            tables = dict(getattr(image, "quantization", None) or {})
    except Exception:  # the header parse only; a broken table means "unknown", not a failure
        return None
    if not tables or any(len(table) != 64 for table in tables.values()):
        return None
    ids = sorted(tables)[:2]
    found = np.array([tables[i] for i in ids], dtype=np.int64)
    errors = np.abs(_SCALED_TABLES[:, : len(ids)] - found[None]).sum(axis=(1, 2))
    # Ties happen at the top (every entry clamps to 1): report the lowest quality that fits.
    return float(_QUALITIES[int(np.argmin(errors))])


def _luma(red: np.ndarray, green: np.ndarray, blue: np.ndarray) -> np.ndarray:
    """BT.601 luma of float planes (0..255), the weights every metric here uses."""
    return 0.299 * red + 0.587 * green + 0.114 * blue


def check_pixels(pixels: np.ndarray) -> None:
    """ValueError unless `pixels` is an H x W x 3 uint8 array (what normalize hands every measure)."""
    if (
        not isinstance(pixels, np.ndarray)
        or pixels.dtype != np.uint8
        or pixels.ndim != 3
        or pixels.shape[2] != 3
    ):
        raise ValueError(f"pixels must be an HxWx3 uint8 array, got {getattr(pixels, 'shape', type(pixels))}")


def _analysis_copy(pixels: np.ndarray, image: Image.Image | None = None) -> Image.Image:
    """Integer box reduction to a long side of at most 512: a true area average, and fast."""
    factor = -(-max(pixels.shape[:2]) // ANALYSIS_LONG_SIDE)
    image = image if image is not None else Image.fromarray(pixels)
    return image.reduce(factor) if factor > 1 else image


def _centre_crop(pixels: np.ndarray) -> np.ndarray:
    """Float centre crop on the 8x8 grid of the full-resolution image (JPEG blocks stay aligned)."""
    height, width, _ = pixels.shape
    side_y, side_x = min(CROP_SIDE, height), min(CROP_SIDE, width)
    top = ((height - side_y) // 2) // 8 * 8
    left = ((width - side_x) // 2) // 8 * 8
    return pixels[top : top + side_y, left : left + side_x].astype(np.float32)


def _laplacian_variance(luma: np.ndarray) -> float:
    if min(luma.shape) < 3:
        return 0.0
    centre = luma[1:-1, 1:-1]
    laplacian = luma[:-2, 1:-1] + luma[2:, 1:-1] + luma[1:-1, :-2] + luma[1:-1, 2:] - 4.0 * centre
    return float(laplacian.var())


def _colorfulness(red: np.ndarray, green: np.ndarray, blue: np.ndarray) -> float:
    rg = red - green
    yb = 0.5 * (red + green) - blue
    spread = math.hypot(float(rg.std()), float(yb.std()))
    mean = math.hypot(float(rg.mean()), float(yb.mean()))
    return spread + 0.3 * mean


def _blockiness(luma: np.ndarray) -> float:
    """Mean |step| across 8-px block edges over mean |step| elsewhere, both directions together."""
    steps_x = np.abs(np.diff(luma, axis=1))  # step between columns c and c+1 sits at index c
    steps_y = np.abs(np.diff(luma, axis=0))
    edge_x = (np.arange(steps_x.shape[1]) % 8) == 7
    edge_y = (np.arange(steps_y.shape[0]) % 8) == 7
    if not edge_x.any() or not edge_y.any():
        return 1.0
    across = steps_x[:, edge_x].sum() + steps_y[edge_y].sum()
    inside = steps_x[:, ~edge_x].sum() + steps_y[~edge_y].sum()
    n_across = steps_x[:, edge_x].size + steps_y[edge_y].size
    n_inside = steps_x[:, ~edge_x].size + steps_y[~edge_y].size
    # Floor of half a gray level: in flat areas (white backgrounds) tiny steps would make the ratio explode.
    return float((across / n_across) / max(inside / n_inside, 0.5))


def _noise_sigma(channel: np.ndarray) -> float:
    """Immerkaer (1996) noise sigma per 16x16 block; the median over blocks that are not clipped.

    Noise is everywhere, texture and edges are not: the median over blocks ignores a textured minority.
    Blocks with more than 5 % of pixels at <= 5 or >= 250 are skipped because clipping hides the noise
    there (white studio backgrounds); with no usable block the answer is 0.
    """
    height, width = channel.shape
    if height < 3 or width < 3:
        return 0.0
    # The mask [[1,-2,1],[-2,4,-2],[1,-2,1]] as two separable second differences.
    rows = channel[:, :-2] - 2.0 * channel[:, 1:-1] + channel[:, 2:]
    response = np.abs(rows[:-2] - 2.0 * rows[1:-1] + rows[2:])
    inner = channel[1:-1, 1:-1]
    side = _NOISE_BLOCK
    blocks_y, blocks_x = response.shape[0] // side, response.shape[1] // side
    if blocks_y == 0 or blocks_x == 0:
        return float(math.sqrt(math.pi / 2.0) * response.mean() / 6.0)
    shape = (blocks_y, side, blocks_x, side)
    cut = (slice(0, blocks_y * side), slice(0, blocks_x * side))
    block_mean = response[cut].reshape(shape).mean(axis=(1, 3))
    clipped = (inner[cut] <= 5) | (inner[cut] >= 250)
    unclipped = clipped.reshape(shape).mean(axis=(1, 3)) <= 0.05
    if not unclipped.any():
        return 0.0
    return float(math.sqrt(math.pi / 2.0) * np.median(block_mean[unclipped]) / 6.0)


def _white_border_ratio(lowest_channel: np.ndarray) -> float:
    """Share of the outer 3 % band whose darkest channel is still near white."""
    height, width = lowest_channel.shape
    band = max(1, round(0.03 * min(height, width)))
    white = lowest_channel >= _NEAR_WHITE
    inner = white[band : height - band, band : width - band]
    border_count = white.size - inner.size
    if border_count <= 0:
        return float(white.mean())
    return float((white.sum() - inner.sum()) / border_count)
