"""Tests of the BRISQUE baseline: real scores of real product photos, pristine against distorted.

The parameters come from bench/.venvs/iqa-site (`ensure_iqa_packages`, installed on first use); without
the package index the scoring tests skip. NIQE, in the package, is tested in tests/pipeline/test_niqe.py.
"""

from __future__ import annotations

import math
import pickle
from collections import OrderedDict

import numpy as np
import pytest

from bench.iqa_baselines import (
    IQAPackagesUnavailable,
    _NoClasses,
    brisque_model,
    brisque_score,
    ensure_iqa_packages,
)
from tests.support.iqa_photos import assert_distortions_score_worse, distortion_scores


@pytest.fixture(scope="module")
def site():
    try:
        return ensure_iqa_packages()
    except IQAPackagesUnavailable as error:
        pytest.skip(str(error))


@pytest.fixture(scope="module")
def scores(site, product_photos) -> np.ndarray:
    return distortion_scores(product_photos, brisque_score)


def test_blur_and_noise_score_worse_than_the_pristine_photo(scores):
    assert_distortions_score_worse(scores)


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
