"""Tests of the BRISQUE baseline: real scores of real product photos, pristine against distorted.

The parameters come from bench/.venvs/iqa-site (`ensure_iqa_packages`, installed on first use); without
the package index the scoring tests skip. NIQE, in the package, is tested in tests/pipeline/test_niqe.py.
"""

from __future__ import annotations

import math
import pickle
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
    """(photos, 3): pristine, Gaussian blur sigma 4, Gaussian noise sigma 30."""
    rng = np.random.default_rng(0)
    rows = []
    for name in PHOTOS:
        pristine = load(product_photos / name)
        blurred = cv2.GaussianBlur(pristine, (0, 0), 4)
        noisy = np.clip(pristine + rng.normal(0, 30, pristine.shape), 0, 255).round().astype(np.uint8)
        rows.append([brisque_score(image) for image in (pristine, blurred, noisy)])
    return np.array(rows)


def test_blur_and_noise_score_worse_than_the_pristine_photo(scores):
    assert np.isfinite(scores).all(), scores
    pristine, blurred, noisy = scores.T
    assert (blurred > pristine).sum() > len(PHOTOS) / 2, scores
    assert (noisy > pristine).sum() > len(PHOTOS) / 2, scores


def test_pristine_scores_are_in_the_published_range(scores):
    # BRISQUE's SVR is on LIVE's DMOS scale (0-100); white backgrounds put product photos at 20-65
    assert ((scores[:, 0] > 0) & (scores[:, 0] < 100)).all(), scores


def test_the_shipped_brisque_model_is_the_36_feature_svr(site):
    model = brisque_model()
    assert model["sv"].shape == (770, 36) and model["coef"].shape == (770,)
    assert model["gamma"] == 0.05 and (model["hi"] > model["lo"]).all()


def test_the_ranges_unpickler_refuses_classes(tmp_path):
    path = tmp_path / "evil.pickle"
    path.write_bytes(pickle.dumps(OrderedDict(min_=[0.0])))
    with open(path, "rb") as fh, pytest.raises(pickle.UnpicklingError, match="refusing"):
        _NoClasses(fh).load()


def test_a_flat_image_has_no_brisque(site):
    assert math.isnan(brisque_score(np.full((64, 64), 17, np.uint8)))
