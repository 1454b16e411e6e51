"""Score super-resolved images with the standard SR evaluation protocol (the one implementation).

In: uint8 images, HxWx3 RGB or HxW single-channel, the restored `sr` and the reference `hr` of equal shape.
Out: Python floats, `psnr_y` in dB and `ssim_y` in [-1, 1], from float32 planes (see Precision).

The protocol is the one the published SR tables use (MATLAB scripts of SRCNN/EDSR/RCAN, BasicSR's
`calculate_psnr` / `calculate_ssim` with `test_y_channel=True`):

1. HR is modcropped to a multiple of the scale before the LR is made (`modcrop`).
2. RGB images are scored on the luma of MATLAB's `rgb2ycbcr` (BT.601, studio range 16..235), kept in
   float (not rounded back to uint8): ``Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255`` with R, G, B
   the 8-bit values 0..255. A single-channel image (Set14 ``bridge.png``) is scored on its raw values,
   as the MATLAB scripts do; converting it to RGB first would lower its PSNR.
3. ``border`` pixels (the scale, by convention) are shaved from every side (`shave`).
4. PSNR uses peak 255; SSIM is Wang et al. (2004): 11x11 Gaussian window, sigma 1.5, K1 = 0.01,
   K2 = 0.03, L = 255, "valid" filtering (no padding), mean of the SSIM map.

Training code imports these functions for its validation metrics, so train-time and data-time scores
agree to the last bit. Scoring both PSNR and SSIM of one pair converts each image to Y once
(`psnr_ssim_y`, or `y_planes` then `psnr_of_y` / `ssim_of_y`), as pair labelling does for every tile.
SSIM filters four planes (both means, the sum of the squares, the product): filtering the sum of the
squares once gives var(sr) + var(hr), the only way SSIM uses them. The filter is OpenCV's separable
`sepFilter2D` (BasicSR filters with OpenCV too). Everything runs on one thread: callers run one process
per core.

Precision: Y planes, filters and the SSIM map are float32; the PSNR's squared error and both means are
accumulated in float64 (`cv2.norm`, `cv2.mean`). Against the same protocol in float64 this moves PSNR by
under 1e-5 dB and SSIM by under 5e-5 (tests bound both on real images); the published tables print 2 and
4 decimals. It halves the cost of labelling a pair tile, which the pairs job does for every tile.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

# MATLAB rgb2ycbcr luma row for inputs in [0, 1]; dividing by 255 adapts it to 0..255 inputs.
_Y_WEIGHTS = (np.array([[65.481, 128.553, 24.966]], dtype=np.float64) / 255.0).astype(np.float32)
_Y_OFFSET = np.float32(16.0)

_SSIM_C1 = (0.01 * 255.0) ** 2
_SSIM_C2 = (0.03 * 255.0) ** 2
_SSIM_RADIUS = 5  # 11x11 window


def _gaussian_window_1d(size: int = 2 * _SSIM_RADIUS + 1, sigma: float = 1.5) -> np.ndarray:
    """Same taps as OpenCV's getGaussianKernel(11, 1.5), which BasicSR's SSIM uses (separable)."""
    offsets = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    taps = np.exp(-(offsets**2) / (2.0 * sigma**2))
    return taps / taps.sum()


_SSIM_TAPS = _gaussian_window_1d().astype(np.float32)
cv2.setNumThreads(1)  # process-wide; data workers and loaders already run one process per core


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """Luma in float32 on the 0..255 scale: MATLAB rgb2ycbcr for HxWx3 RGB; raw values for HxW."""
    arr = np.asarray(img)
    if arr.ndim == 2:
        return arr.astype(np.float32)
    if arr.ndim == 3 and arr.shape[2] == 3:  # one pass over the pixels: a 1x3 colour transform
        luma = cv2.transform(arr.astype(np.float32), _Y_WEIGHTS)
        luma += _Y_OFFSET
        return luma
    raise ValueError(f"rgb_to_y expects an HxW or HxWx3 image, got shape {arr.shape}")


def modcrop(img: np.ndarray, scale: int) -> np.ndarray:
    """Crop the bottom/right so height and width are multiples of `scale` (a view, no copy)."""
    if scale < 1:
        raise ValueError(f"modcrop scale must be >= 1, got {scale}")
    height, width = img.shape[0], img.shape[1]
    return img[: height - height % scale, : width - width % scale]


def shave(img: np.ndarray, border: int) -> np.ndarray:
    """Drop `border` pixels from every side (a view); border 0 returns the image unchanged."""
    if border < 0:
        raise ValueError(f"shave border must be >= 0, got {border}")
    if border == 0:
        return img
    if img.shape[0] <= 2 * border or img.shape[1] <= 2 * border:
        raise ValueError(f"image of shape {img.shape[:2]} is too small to shave a border of {border}")
    return img[border:-border, border:-border]


def y_planes(sr: np.ndarray, hr: np.ndarray, border: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Validate a pair and return its shaved Y planes in float32, to score with `psnr_of_y` / `ssim_of_y`."""
    sr_arr, hr_arr = np.asarray(sr), np.asarray(hr)
    if sr_arr.shape != hr_arr.shape:
        raise ValueError(f"sr and hr must have the same shape, got {sr_arr.shape} and {hr_arr.shape}")
    if sr_arr.dtype != np.uint8 or hr_arr.dtype != np.uint8:
        raise ValueError(
            f"sr and hr must be uint8 (0..255), got {sr_arr.dtype} and {hr_arr.dtype}; "
            "round and clip float outputs first"
        )
    return shave(rgb_to_y(sr_arr), border), shave(rgb_to_y(hr_arr), border)


def _checked_planes(sr_y: np.ndarray, hr_y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The two planes as float32 (a no-op for `y_planes` output), refusing mismatched shapes."""
    if sr_y.ndim != 2 or sr_y.shape != hr_y.shape:
        raise ValueError(
            f"Y planes must be two HxW arrays of the same shape (from y_planes), got {sr_y.shape} and {hr_y.shape}"
        )
    return np.asarray(sr_y, dtype=np.float32), np.asarray(hr_y, dtype=np.float32)


# The protocol's reference: published bicubic Y-PSNR (dB; MATLAB imresize both ways, border = scale), as in
# the EDSR / RCAN / BasicSR tables. Tests reproduce them; the training report prints them beside each model.
PUBLISHED_BICUBIC_Y_PSNR: dict[tuple[str, int], float] = {
    ("Set5", 2): 33.66,
    ("Set5", 3): 30.39,
    ("Set5", 4): 28.42,
    ("Set14", 2): 30.24,
    ("Set14", 3): 27.55,
    ("Set14", 4): 26.00,
}

# Identical (or near-identical) images would score inf: one flat white product-background tile then turns a
# validation mean, a label column or a gate into inf. Scores are capped here instead; real SR scores sit
# far below (Set5 x2 bicubic is 33.7 dB), so the cap never touches the protocol numbers.
PSNR_CAP_DB = 100.0


def psnr_of_y(sr_y: np.ndarray, hr_y: np.ndarray) -> float:
    """PSNR in dB (peak 255) of two Y planes from `y_planes`, capped at PSNR_CAP_DB (identical planes)."""
    sr_y, hr_y = _checked_planes(sr_y, hr_y)
    mse = cv2.norm(sr_y, hr_y, cv2.NORM_L2SQR) / sr_y.size  # accumulated in float64
    if mse == 0.0:
        return PSNR_CAP_DB
    return min(10.0 * math.log10(255.0**2 / mse), PSNR_CAP_DB)


def psnr_y(sr: np.ndarray, hr: np.ndarray, border: int = 0) -> float:
    """Y-channel PSNR in dB (peak 255) after shaving `border` pixels, capped at PSNR_CAP_DB."""
    return psnr_of_y(*y_planes(sr, hr, border))


def _filter_valid(plane: np.ndarray) -> np.ndarray:
    """Separable 11x11 Gaussian filter keeping only the positions where the window fits."""
    r = _SSIM_RADIUS
    return cv2.sepFilter2D(plane, cv2.CV_32F, _SSIM_TAPS, _SSIM_TAPS, borderType=cv2.BORDER_CONSTANT)[
        r:-r, r:-r
    ]


def ssim_of_y(sr_y: np.ndarray, hr_y: np.ndarray) -> float:
    """SSIM (Wang et al., as BasicSR's calculate_ssim) of two Y planes from `y_planes`."""
    sr_y, hr_y = _checked_planes(sr_y, hr_y)
    if min(sr_y.shape) < 2 * _SSIM_RADIUS + 1:
        raise ValueError(f"SSIM needs at least 11x11 pixels after shaving, got {sr_y.shape}")
    # In-place arithmetic: the same operations in the same order, without a dozen plane-sized temporaries.
    mu_sr, mu_hr = _filter_valid(sr_y), _filter_valid(hr_y)
    mu_product = mu_sr * mu_hr
    mu_squares = np.add(np.square(mu_sr, out=mu_sr), np.square(mu_hr, out=mu_hr), out=mu_sr)
    squares = sr_y * sr_y
    squares += hr_y * hr_y
    var_sum = _filter_valid(squares)  # var(sr) + var(hr) once the means are taken off
    var_sum -= mu_squares
    covar = _filter_valid(sr_y * hr_y)
    covar -= mu_product
    # (2 mu_sr mu_hr + C1) (2 covar + C2) / ((mu_sr^2 + mu_hr^2 + C1) (var_sum + C2)), in place
    numerator, denominator = mu_product, mu_squares
    numerator *= 2.0
    numerator += _SSIM_C1
    covar *= 2.0
    covar += _SSIM_C2
    numerator *= covar
    denominator += _SSIM_C1
    var_sum += _SSIM_C2
    denominator *= var_sum
    numerator /= denominator
    return float(cv2.mean(numerator)[0])  # accumulated in float64


def ssim_y(sr: np.ndarray, hr: np.ndarray, border: int = 0) -> float:
    """Y-channel SSIM (Wang et al., as BasicSR's calculate_ssim) after shaving `border` pixels."""
    return ssim_of_y(*y_planes(sr, hr, border))


def psnr_ssim_y(sr: np.ndarray, hr: np.ndarray, border: int = 0) -> tuple[float, float]:
    """(`psnr_y`, `ssim_y`) of one pair, converting each image to Y once."""
    sr_y, hr_y = y_planes(sr, hr, border)
    return psnr_of_y(sr_y, hr_y), ssim_of_y(sr_y, hr_y)
