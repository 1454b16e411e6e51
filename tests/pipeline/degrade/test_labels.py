"""Tests for pipeline.degrade.labels: full-reference scores, severity, monotone quality score."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.degrade import SeedKey, Severity, bicubic_upscale, get_recipe
from pipeline.degrade.labels import LabelConfig, pair_labels, quality_class, quality_score
from pipeline.sr_metrics import PSNR_CAP_DB, psnr_y


@pytest.fixture(scope="module")
def baby(shared_data: Path) -> np.ndarray:
    with Image.open(shared_data / "sr_benchmarks" / "Set5" / "baby.png") as img:
        return np.asarray(img.convert("RGB"))


def test_bicubic_labels_use_the_standard_protocol(baby: np.ndarray) -> None:
    recipe = get_recipe("bicubic_x4")
    hr, lr = recipe.crop_hr(baby), recipe.apply(baby, {})
    labels = pair_labels(hr, lr, recipe, {})
    assert labels.psnr_y == psnr_y(bicubic_upscale(lr, 4), hr, border=4)
    assert 30.0 < labels.psnr_y < 32.0 and 0.8 < labels.ssim_y < 0.9  # baby x4: 31.78 dB published
    assert (labels.blur_sigma, labels.noise_sigma, labels.jpeg_quality, labels.scale) == (0.0, 0.0, 100, 4)
    assert labels.quality_class == "good"
    assert set(labels.as_dict()) >= {"psnr_y", "ssim_y", "quality_score", "quality_class"}


def test_scale_one_compares_directly(baby: np.ndarray) -> None:
    recipe = get_recipe("restore_x1_jpeg")
    labels = pair_labels(baby, recipe.apply(baby, {"quality": 95}), recipe, {"quality": 95})
    assert labels.psnr_y == psnr_y(recipe.apply(baby, {"quality": 95}), baby)
    identical = pair_labels(baby, baby, recipe, {"quality": 95})
    assert identical.psnr_y == PSNR_CAP_DB and identical.ssim_y == pytest.approx(1.0)


def test_realworld_pairs_score_lower_than_bicubic(baby: np.ndarray) -> None:
    bicubic, realworld = get_recipe("bicubic_x4"), get_recipe("realworld_x4")
    reference = pair_labels(bicubic.crop_hr(baby), bicubic.apply(baby, {}), bicubic, {})
    for variant in range(3):
        params = realworld.sample_params(SeedKey("baby", variant))
        labels = pair_labels(realworld.crop_hr(baby), realworld.apply(baby, params), realworld, params)
        assert labels.quality_score < reference.quality_score
        assert labels.psnr_y < reference.psnr_y


@pytest.mark.parametrize(
    "component",
    [
        ("blur_sigma", [0.0, 0.5, 1.0, 2.0, 4.0, 8.0]),
        ("noise_sigma", [0.0, 1.0, 5.0, 15.0, 30.0, 60.0]),
        ("jpeg_quality", [100, 95, 80, 60, 40, 30, 10]),
        ("scale", [1, 2, 3, 4, 8]),
    ],
)
def test_quality_score_is_strictly_monotone_in_every_component(component: tuple[str, list]) -> None:
    field, values = component
    base = Severity(blur_sigma=1.0, noise_sigma=5.0, jpeg_quality=80, scale=2)
    scores = [quality_score(dataclasses.replace(base, **{field: v})) for v in values]
    assert all(a > b for a, b in zip(scores, scores[1:], strict=False)), scores
    assert all(0.0 <= s <= 5.0 for s in scores)


def test_score_bounds_and_classes() -> None:
    assert quality_score(Severity()) == 5.0
    assert quality_score(Severity(blur_sigma=50, noise_sigma=200, jpeg_quality=1, scale=8)) < 0.01
    assert quality_score(Severity(scale=2)) == pytest.approx(5 * math.exp(-0.5 / 3))
    classes = [quality_class(s) for s in (5.0, 4.0, 3.99, 3.0, 2.5, 1.0, 0.99, 0.0)]
    assert classes == ["excellent", "excellent", "good", "good", "fair", "poor", "bad", "bad"]
    with pytest.raises(ValueError, match="severity"):
        quality_score(Severity(noise_sigma=-1.0))


def test_label_config_is_validated() -> None:
    with pytest.raises(ValueError, match="> 0"):
        LabelConfig(temperature=0.0)
    with pytest.raises(ValueError, match="decreasing"):
        LabelConfig(class_floors=(1.0, 2.0, 3.0, 4.0))
    strict = LabelConfig(noise_sigma_per_point=1.0)
    assert quality_score(Severity(noise_sigma=5), strict) < quality_score(Severity(noise_sigma=5))


def test_misaligned_pair_raises(baby: np.ndarray) -> None:
    recipe = get_recipe("bicubic_x2")
    with pytest.raises(ValueError, match="not an aligned pair"):
        pair_labels(baby, baby[:10, :10], recipe, {})
