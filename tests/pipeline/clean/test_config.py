"""CleanConfig / QualityThresholds: defaults, validation, immutability."""

from __future__ import annotations

import math

import pytest

from pipeline.clean import CleanConfig, QualityThresholds


def test_defaults_need_no_setup() -> None:
    config = CleanConfig()
    assert (config.max_pixels, config.min_side, config.max_aspect_ratio) == (64_000_000, 256, 4.0)
    # dedup: pHash within 4 bits AND colour signatures within 3 Delta E (measured in the docstring)
    assert (config.phash_radius, config.color_distance_max) == (4, 3.0)
    assert config.quality == QualityThresholds()
    # cleanvision's defaults where the score is the same.
    assert config.quality.dark_max_p99_brightness == 0.37
    assert config.quality.light_max_inverted_p5_brightness == 0.05
    assert config.quality.odd_aspect_min_ratio == 0.35
    assert config.quality.low_information_max_entropy == 3.0


def test_nested_thresholds_accept_a_mapping() -> None:
    config = CleanConfig.model_validate({"phash_radius": 4, "quality": {"blurry_max_sharpness": 50.0}})
    assert config.phash_radius == 4 and config.quality.blurry_max_sharpness == 50.0
    assert config.quality.noisy_min_sigma == QualityThresholds().noisy_min_sigma


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"max_pixel": 10}, "max_pixel"),
        ({"phash_radius": 33}, "phash_radius"),
        ({"color_distance_max": -0.5}, "color_distance_max"),
        ({"color_distance_max": float("nan")}, "color_distance_max"),
        ({"max_aspect_ratio": 0.5}, "max_aspect_ratio"),
        ({"min_side": 0}, "min_side"),
        ({"min_side": 10_000, "max_pixels": 1_000_000}, "raise max_pixels or lower min_side"),
        ({"quality": {"dark_max_p99_brightness": 1.5}}, "dark_max_p99_brightness"),
        ({"quality": {"no_such_flag": 1}}, "no_such_flag"),
    ],
)
def test_bad_values_raise_value_error_naming_the_field(fields: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CleanConfig.model_validate(fields)


def test_colour_test_can_be_switched_off() -> None:
    assert CleanConfig(color_distance_max=math.inf).color_distance_max == math.inf  # pHash only


def test_configs_are_frozen() -> None:
    config = CleanConfig()
    with pytest.raises(ValueError, match="frozen"):
        config.min_side = 10  # type: ignore[misc]
    with pytest.raises(ValueError, match="frozen"):
        config.quality.blurry_max_sharpness = 1.0  # type: ignore[misc]
