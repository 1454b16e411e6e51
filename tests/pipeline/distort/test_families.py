"""Tests for pipeline.distort.families: the family list, the fixed strength tables and seeded params."""

from __future__ import annotations

import json

import pytest

from pipeline.degrade.recipe import seed_generator
from pipeline.distort import FAMILIES, LEVELS, PRISTINE, STRENGTHS, grid, grid_params
from pipeline.distort.families import GRID_NAME, NOISE_SEED_LIMIT, VARIANT_STRIDE, grid_variant

# +1: the value grows with severity (blur sigma), -1: it shrinks (JPEG quality, photons, levels).
SEVERITY_DIRECTION = {
    "sigma": 1,
    "length": 1,
    "radius": 1,
    "photons": -1,
    "quality": -1,
    "first_quality": -1,
    "second_quality": -1,
    "stops": 1,
    "strength": 1,
    "levels": -1,
}
# Drawn values per family: what must differ between two images (the nominal strengths must not).
DRAWN = {
    "motion_blur": ("angle_deg",),
    "gaussian_noise": ("seed",),
    "poisson_noise": ("seed",),
    "double_jpeg": ("shift_y", "shift_x"),
    "colour_cast": ("hue_deg",),
}


def test_families_are_the_issue_list_in_order() -> None:
    assert FAMILIES == (
        "gaussian_blur",
        "motion_blur",
        "defocus_blur",
        "gaussian_noise",
        "poisson_noise",
        "jpeg",
        "double_jpeg",
        "fake_hr",
        "overexposure",
        "underexposure",
        "contrast_loss",
        "colour_cast",
        "oversaturation",
        "chroma_subsampling",
        "posterization",
    )
    assert LEVELS == 5
    assert tuple(STRENGTHS) == FAMILIES


@pytest.mark.parametrize("family", FAMILIES)
def test_each_table_has_one_strictly_more_severe_value_per_level(family: str) -> None:
    for name, values in STRENGTHS[family].items():
        assert len(values) == LEVELS
        # Factors shrink for contrast_loss (toward flat), grow for every other family's "factor".
        direction = SEVERITY_DIRECTION.get(name, -1 if family == "contrast_loss" else 1)
        steps = [direction * (b - a) for a, b in zip(values, values[1:], strict=False)]
        assert all(step > 0 for step in steps), f"{family}.{name} is not strictly more severe: {values}"


@pytest.mark.parametrize("family", FAMILIES)
def test_params_are_json_with_sorted_keys_and_the_table_strengths(family: str) -> None:
    for level in range(1, LEVELS + 1):
        params = grid_params("img-a", family, level, 1)
        assert list(params) == sorted(params)
        assert json.loads(json.dumps(params, sort_keys=True)) == params
        assert params["family"] == family and params["level"] == level
        for name, values in STRENGTHS[family].items():
            assert params[name] == values[level - 1]
        expected_keys = {"family", "level", *STRENGTHS[family], *DRAWN.get(family, ())}
        assert set(params) == expected_keys


@pytest.mark.parametrize("family", FAMILIES)
def test_same_key_same_params_and_drawn_values_follow_the_image_id(family: str) -> None:
    assert grid_params("img-a", family, 3, 1) == grid_params("img-a", family, 3, 1)
    if family not in DRAWN:
        assert grid_params("img-a", family, 3, 1) == grid_params("img-b", family, 3, 1)
        return
    drawn = DRAWN[family]
    first = [tuple(grid_params("img-a", family, lv, 1)[k] for k in drawn) for lv in range(1, LEVELS + 1)]
    other = [tuple(grid_params("img-b", family, lv, 1)[k] for k in drawn) for lv in range(1, LEVELS + 1)]
    newer = [tuple(grid_params("img-a", family, lv, 2)[k] for k in drawn) for lv in range(1, LEVELS + 1)]
    assert first != other and first != newer  # a shift of 1..7 may repeat by chance for one level, not all
    if family in ("gaussian_noise", "poisson_noise"):
        assert len(set(first + other + newer)) == 3 * LEVELS  # every member its own noise


def test_drawn_values_come_from_the_seed_contract() -> None:
    params = grid_params("img-a", "gaussian_noise", 2, 1)
    variant = FAMILIES.index("gaussian_noise") * VARIANT_STRIDE + 2
    assert grid_variant("gaussian_noise", 2) == variant
    expected = int(seed_generator("img-a", GRID_NAME, 1, variant).integers(0, NOISE_SEED_LIMIT))
    assert params["seed"] == expected
    shifts = grid_params("img-a", "double_jpeg", 4, 1)
    assert 1 <= shifts["shift_y"] <= 7 and 1 <= shifts["shift_x"] <= 7
    assert 0 <= grid_params("img-a", "motion_blur", 1, 1)["angle_deg"] < 180
    assert 0 <= grid_params("img-a", "colour_cast", 1, 1)["hue_deg"] < 360


def test_level_zero_is_the_pristine_member() -> None:
    assert grid_params("img-a", "jpeg", 0, 1) == {"family": PRISTINE, "level": 0}
    assert grid_params("img-a", PRISTINE, 0, 1) == {"family": PRISTINE, "level": 0}


def test_grid_lists_pristine_and_every_family_level_once() -> None:
    members = grid("img-a", 1)
    assert len(members) == 1 + len(FAMILIES) * LEVELS == 76
    assert members[0] == {"family": PRISTINE, "level": 0}
    assert len({(m["family"], m["level"]) for m in members}) == 76
    assert members[1:] == [grid_params("img-a", f, lv, 1) for f in FAMILIES for lv in range(1, LEVELS + 1)]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("img-a", "sepia", 1, 1), "unknown distortion family 'sepia'.*gaussian_blur"),
        (("img-a", "jpeg", 6, 1), "level must be an integer in 0..5, got 6"),
        (("img-a", "jpeg", -1, 1), "level must be an integer"),
        (("img-a", "jpeg", True, 1), "level must be an integer"),
        (("img-a", "jpeg", "2", 1), "level must be an integer"),
        (("img-a", PRISTINE, 2, 1), "only at level 0"),
        (("", "jpeg", 1, 1), "image_id"),
        (("img-a", "jpeg", 1, -1), "version"),
    ],
)
def test_bad_keys_are_refused(args: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        grid_params(*args)
