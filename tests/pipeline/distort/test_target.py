"""Tests for pipeline.distort.target: the full-reference 0-5 target ranks every family's levels."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage.color import deltaE_cie76, rgb2lab

from pipeline.distort import (
    FAMILIES,
    GAMMA,
    LEVELS,
    distort,
    fr_measures,
    grid_params,
    quality_canvas,
    score_from_fr,
    target_score,
    target_scores,
)
from pipeline.sr_metrics import ssim_y


def _photos(product_photos: Path, side: int) -> dict[str, np.ndarray]:
    """Three real photos spread over the sorted set (a colourful cover, dark and brown apparel)."""
    paths = sorted(product_photos.glob("*.jpg"))
    chosen = [paths[i] for i in range(0, len(paths), len(paths) // 3)][:3]
    return {p.stem: quality_canvas(np.array(Image.open(p).convert("RGB")), side) for p in chosen}


def _levels(image_id: str, canvas: np.ndarray, family: str) -> list[np.ndarray]:
    return [distort(canvas, grid_params(image_id, family, lv, 1)) for lv in range(1, LEVELS + 1)]


@pytest.fixture(scope="module")
def raw_scores(product_photos: Path) -> dict[str, np.ndarray]:
    """family -> (photos x levels) targets of each member on its own, before the running minimum."""
    canvases = _photos(product_photos, 128)
    return {
        family: np.array(
            [[target_score(c, d) for d in _levels(image_id, c, family)] for image_id, c in canvases.items()]
        )
        for family in FAMILIES
    }


def test_the_pristine_member_scores_five(product_photos: Path) -> None:
    canvas = next(iter(_photos(product_photos, 128).values()))
    assert fr_measures(canvas, canvas.copy()) == {"ssim_y": 1.0, "colour_fidelity": 1.0, "fr": 1.0}
    assert target_score(canvas, canvas) == 5.0
    assert score_from_fr(1.0) == 5.0 and score_from_fr(0.0) == 0.0


@pytest.mark.parametrize("family", FAMILIES)
def test_the_fr_measure_itself_ranks_the_levels(raw_scores: dict[str, np.ndarray], family: str) -> None:
    scores = raw_scores[family]
    assert ((scores >= 0.0) & (scores <= 5.0)).all()
    means = scores.mean(axis=0)  # over the photos, no running minimum
    assert all(np.diff(means) < 0), f"{family}: mean targets by level {np.round(means, 3)}"
    assert (scores < 5.0).all()  # every member is measurably worse than its reference


def test_target_scores_is_the_running_minimum_of_the_raw_targets(product_photos: Path) -> None:
    for image_id, canvas in _photos(product_photos, 128).items():
        for family in ("motion_blur", "colour_cast", "jpeg"):
            distorted = _levels(image_id, canvas, family)
            raw = [target_score(canvas, d) for d in distorted]
            scores = target_scores(canvas, distorted)
            assert scores == pytest.approx(np.minimum.accumulate(raw).tolist(), abs=0)
            assert all(b <= a for a, b in zip(scores, scores[1:], strict=False))


def test_the_measures_are_ssim_on_luma_and_cie76_colour(product_photos: Path) -> None:
    canvas = next(iter(_photos(product_photos, 128).values()))
    cast = distort(canvas, grid_params("x", "colour_cast", 4, 1))
    measures = fr_measures(canvas, cast)
    assert measures["ssim_y"] == pytest.approx(ssim_y(cast, canvas, border=0), abs=1e-12)
    # CIE76 from scikit-image in float64: the OpenCV float32 Lab it replaces agrees closely.
    delta_e = deltaE_cie76(rgb2lab(canvas), rgb2lab(cast)).mean()
    assert measures["colour_fidelity"] == pytest.approx(math.exp(-delta_e / 20.0), abs=2e-3)
    assert measures["fr"] == pytest.approx(measures["ssim_y"] * measures["colour_fidelity"], abs=1e-12)
    assert target_score(canvas, cast) == pytest.approx(5.0 * measures["fr"] ** GAMMA)


def test_the_calibration_on_the_384_canvas(product_photos: Path) -> None:
    """GAMMA and the tables together: level 1 near 4 and level 5 near 1.2 (lt01 is a full-frame cover:
    its blur and JPEG members score about 1.5 lower than the studio shots; chroma is the mildest family)."""
    canvases = _photos(product_photos, 384)
    for family in FAMILIES:
        scores = np.array([target_scores(c, _levels(i, c, family)) for i, c in canvases.items()])
        level_1, level_5 = scores[:, 0].mean(), scores[:, -1].mean()
        assert 3.3 <= level_1 <= 4.9, f"{family}: level-1 mean {level_1:.2f}"
        assert 0.5 <= level_5 <= (3.6 if family == "chroma_subsampling" else 2.4), f"{family}: {level_5:.2f}"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda r: target_scores(r, [r] * 4), "expected the 5 levels"),
        (lambda r: fr_measures(r, r[:-1]), "reference's shape"),
        (lambda r: fr_measures(r, r.astype(np.float32)), "uint8"),
        (lambda r: fr_measures(r[..., 0], r[..., 0]), "HxWx3"),
        (lambda r: score_from_fr(1.5), r"fr must lie in \[0, 1\]"),
        (lambda r: score_from_fr(float("nan")), r"fr must lie in \[0, 1\]"),
    ],
)
def test_bad_inputs_are_refused(call, message: str) -> None:
    reference = np.full((32, 32, 3), 128, np.uint8)
    with pytest.raises(ValueError, match=message):
        call(reference)
