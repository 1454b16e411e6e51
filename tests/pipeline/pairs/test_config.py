"""PairsConfig: defaults need no setup; every bad value fails before work with a message naming it."""

from __future__ import annotations

import pytest

from pipeline.pairs.config import SCHEDULER_ENV, PairsConfig


def test_defaults_and_tile_geometry():
    config = PairsConfig()
    assert config.recipes == ("bicubic_x4",) and config.variants == 1 and config.retries == 2
    assert (config.hr_tile, config.overlap, config.png_compress_level) == (480, 0, 1)
    tiles = config.tiles()
    assert (tiles.hr_tile, tiles.overlap, tiles.min_hr_side) == (480, 0, config.min_tile)
    assert PairsConfig(recipes="realworld_x2").recipes == ("realworld_x2",)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"recipes": ["bicubic_x5"]}, "unknown recipe.*bicubic_x5.*known recipes: bicubic_x2"),
        ({"recipes": []}, "recipes is empty"),
        ({"recipes": ["bicubic_x2", "bicubic_x2"]}, "twice"),
        ({"recipe_overrides": {"nope": {}}}, "unknown recipe"),
        ({"recipes": ["restore_x1_jpeg"], "recipe_overrides": {"restore_x1_jpeg": {"quality_range": [0, 200]}}},
         "quality_range"),
        ({"recipes": ["bicubic_x3"], "hr_tile": 256}, "hr_tile=256 is not a multiple of recipe bicubic_x3's scale 3"),
        ({"overlap": 480}, "overlap=480"),
        ({"min_tile": 8}, "min_tile=8"),
        ({"variants": 0}, "variants=0"),
        ({"png_compress_level": 10}, "png_compress_level"),
        ({"shard_target_bytes": 10}, "shard_target_bytes"),
        ({"workers": 0}, "workers=0"),
        ({"retries": -1}, "retries"),
        ({"tile": 480}, "tile"),
    ],
)  # fmt: skip
def test_bad_values_raise_value_error_naming_them(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PairsConfig(**kwargs)


def test_scheduler_address_resolution(monkeypatch):
    monkeypatch.delenv(SCHEDULER_ENV, raising=False)
    assert PairsConfig().resolved_scheduler() is None
    monkeypatch.setenv(SCHEDULER_ENV, "tcp://10.0.0.1:8786")
    assert PairsConfig().resolved_scheduler() == "tcp://10.0.0.1:8786"
    assert PairsConfig(scheduler_address="tcp://h:1").resolved_scheduler() == "tcp://h:1"


def test_output_key_ignores_how_the_job_runs():
    base = PairsConfig()
    assert base.output_key() == PairsConfig(workers=7, retries=0, scheduler_address="tcp://h:1").output_key()
    assert base.output_key() != PairsConfig(variants=2).output_key()
    assert (
        base.output_key()
        != PairsConfig(recipe_overrides={"realworld_x4": {"final_sinc_prob": 0.5}}).output_key()
    )


def test_hr_tiles_are_encoded_with_the_codec_and_its_level():
    import numpy as np

    from pipeline.tile_codec import decode_tile, encode_tile

    tile = np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    zstd = PairsConfig(zstd_level=9)
    png = PairsConfig(hr_codec="png", png_compress_level=0)
    assert zstd.encode_hr_tile(tile) == encode_tile(tile, "zstd", 9) != encode_tile(tile, "zstd", 1)
    assert png.encode_hr_tile(tile) == encode_tile(tile, "png", 0) != encode_tile(tile, "png", 9)
    for config in (zstd, png):
        np.testing.assert_array_equal(decode_tile(config.encode_hr_tile(tile)), tile)
