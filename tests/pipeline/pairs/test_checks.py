"""The GX gate of a pairs partition: passes a sound index, lists every failed expectation otherwise."""

from __future__ import annotations

import pytest

from pipeline.pairs.checks import PairExpectations, check_pairs
from schemas.expectations import GateError
from schemas.pairs import PAIR_INDEX_SCHEMA, PAIR_SKIP_SCHEMA
from schemas.validate import records_to_table

EXPECT = PairExpectations(
    recipe="bicubic_x4", scale=4, partition="2026-11-20", min_tile=96, hr_tile=240, rows=2
)


def record(tile_x: int, **changes) -> dict:
    base = {
        "pair_id": f"abc_0_0_{tile_x}", "image_id": "abc", "product_id": "p1", "split": "train",
        "recipe": "bicubic_x4", "recipe_version": 1, "scale": 4, "variant": 0, "tile_y": 0, "tile_x": tile_x,
        "hr_width": 240, "hr_height": 240, "lr_width": 60, "lr_height": 60, "shard": "shards/000000.tar",
        "hr_offset": 512, "hr_size": 1000, "lr_offset": 2048, "lr_size": 100, "params": "{}",
        "psnr_y": 100.0, "ssim_y": 0.9, "quality_score": 3.58, "quality_class": "good",
        "blur_sigma": 0.0, "noise_sigma": 0.0, "jpeg_quality": 100, "lr_sharpness": 10.0,
        "lr_noise_sigma": 1.0, "lr_blockiness": 1.0, "image_width": 480, "image_height": 240,
        "source_partition": "2026-11-20", "source_shard": "shards/000000.tar", "partition": "2026-11-20",
    }  # fmt: skip
    return {**base, **changes}


def skips(reason: str = "too_small"):
    row = {"image_id": "tiny", "recipe": "bicubic_x4", "variant": 0, "reason": reason,
           "source_partition": "2026-11-20", "source_shard": "shards/000000.tar", "partition": "2026-11-20"}  # fmt: skip
    return records_to_table([row], PAIR_SKIP_SCHEMA)


def test_a_sound_index_passes():
    index = records_to_table([record(0), record(240)], PAIR_INDEX_SCHEMA)
    check_pairs(index, skips(), EXPECT)


def test_every_failure_is_listed():
    bad = [
        record(0, quality_score=5.5, lr_width=59),
        record(0, quality_class="superb", recipe="bicubic_x2"),
    ]
    with pytest.raises(GateError) as err:
        check_pairs(records_to_table(bad, PAIR_INDEX_SCHEMA), skips("bored"), EXPECT)
    message = str(err.value)
    assert "nothing was committed" in message and "pairs/bicubic_x4/2026-11-20 pair_index" in message
    for what in ("unique", "quality_score", "quality_class", "recipe", "hr_width", "bored"):
        assert what in message, what


def test_row_count_must_match_what_the_workers_returned():
    index = records_to_table([record(0)], PAIR_INDEX_SCHEMA)
    with pytest.raises(GateError, match="row_count"):
        check_pairs(index, skips(), EXPECT)
