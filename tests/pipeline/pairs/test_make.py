"""make_pairs_for_shard, run in-process: tiles match the index, pairs regenerate from params, skips recorded."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np
import pytest

from pipeline.commit import ManifestError, PartitionWriter
from pipeline.degrade import get_recipe
from pipeline.pairs.config import PairsConfig
from pipeline.pairs.job import read_input_shards
from pipeline.pairs.make import decode_hr, make_pairs_for_shard, output_shard_name
from pipeline.shards import ShardWriter, iter_tar, read_member
from pipeline.sr_metrics import rgb_to_y
from pipeline.tile_codec import decode_tile, encode_tile
from schemas.pairs import PAIR_INDEX_SCHEMA, PAIR_SKIP_SCHEMA
from schemas.reasons import Reason
from schemas.validate import records_to_table

CONFIG = PairsConfig(recipes=["realworld_x4"], hr_tile=240, min_tile=96)


def run_shards(storage, partition, recipe, config, out_dir="out"):
    _, shards = read_input_shards(storage, partition)
    return [
        make_pairs_for_shard(storage.root, storage.options, shard, rows, recipe, config, out_dir)
        for shard, rows in shards
    ]


def test_output_shard_names_follow_the_input_shard():
    assert output_shard_name("shards/000003.tar", 0) == "shards/000003.tar"
    assert output_shard_name("shards/000003.tar", 2) == "shards/000003-002.tar"


def test_pairs_match_their_shards_and_regenerate_bit_for_bit(local_storage, images_partition):
    partition = images_partition(local_storage)
    outputs = run_shards(local_storage, partition, "realworld_x4", CONFIG)
    records = [r for o in outputs for r in o.records]
    assert len(records) >= 8
    records_to_table(records, PAIR_INDEX_SCHEMA)  # every record fits the declared schema
    for output in outputs:
        keys = [(r["image_id"], r["variant"], r["tile_y"], r["tile_x"]) for r in output.records]
        assert keys == sorted(keys)
        for file in output.files:  # the tar's members are exactly the indexed pairs, in index order
            blob = local_storage.read_bytes(f"out/{file.name}")
            assert hashlib.sha256(blob).hexdigest() == file.sha256 and len(blob) == file.size
            members = list(iter_tar(blob))
            assert [key for key, _ in members] == [
                r["pair_id"] for r in output.records if r["shard"] == file.name
            ]
            assert all(set(m) == {"hr.npy.zst", "lr.png"} for _, m in members)

    recipe = get_recipe("realworld_x4", version=records[0]["recipe_version"])
    assert recipe.version == 2  # new pairs are made by the latest version
    _, shards = read_input_shards(local_storage, partition)
    rows = {row["image_id"]: (shard, row) for shard, shard_rows in shards for row in shard_rows}
    for record in records[:3] + records[-2:]:
        shard, row = rows[record["image_id"]]
        hr = decode_hr(read_member(local_storage, shard.path, row["offset"], row["size"]))
        lr = recipe.apply(hr, json.loads(record["params"]))  # regenerate from the recorded params only
        y, x, s = record["tile_y"], record["tile_x"], record["scale"]
        lr_tile = lr[y // s : y // s + record["lr_height"], x // s : x // s + record["lr_width"]]
        hr_tile = recipe.crop_hr(hr)[y : y + record["hr_height"], x : x + record["hr_width"]]
        stored_lr = read_member(
            local_storage, f"out/{record['shard']}", record["lr_offset"], record["lr_size"]
        )
        stored_hr = read_member(
            local_storage, f"out/{record['shard']}", record["hr_offset"], record["hr_size"]
        )
        assert encode_tile(lr_tile, "png", CONFIG.png_compress_level) == stored_lr
        assert np.array_equal(decode_tile(stored_hr), hr_tile)
        assert record["pair_id"] == f"{record['image_id']}_{record['variant']}_{y}_{x}"


def test_same_input_gives_the_same_bytes(local_storage, images_partition):
    partition = images_partition(local_storage)
    config = CONFIG.model_copy(update={"variants": 2})
    first = run_shards(local_storage, partition, "realworld_x4", config, "a")
    second = run_shards(local_storage, partition, "realworld_x4", config, "b")
    assert [o.files for o in first] == [o.files for o in second]
    assert [o.records for o in first] == [o.records for o in second]
    variants = {r["variant"] for o in first for r in o.records}
    assert variants == {0, 1}
    params = {r["variant"]: r["params"] for o in first for r in o.records if r["tile_y"] == r["tile_x"] == 0}
    assert params[0] != params[1]  # the variant index is part of the seed


def test_small_hr_is_skipped_with_a_reason(local_storage, images_partition):
    partition = images_partition(local_storage)
    outputs = run_shards(local_storage, partition, "bicubic_x4", PairsConfig(hr_tile=240, min_tile=96))
    skips = [s for o in outputs for s in o.skips]
    records_to_table(skips, PAIR_SKIP_SCHEMA)
    assert [(s["reason"], s["image_width"], s["image_height"]) for s in skips] == [(Reason.TOO_SMALL, 78, 78)]
    assert "min_tile=96" in skips[0]["detail"]
    assert skips[0]["image_id"] not in {r["image_id"] for o in outputs for r in o.records}
    assert sum(o.images for o in outputs) == 5


def test_blank_tiles_are_skipped_and_recorded(local_storage, images_partition):
    partition = images_partition(local_storage)
    keep_all = PairsConfig(hr_tile=120, min_tile=96, flat_tile_std=0)
    every = {
        r["pair_id"]: r
        for o in run_shards(local_storage, partition, "bicubic_x4", keep_all, "a")
        for r in o.records
    }
    outputs = run_shards(
        local_storage, partition, "bicubic_x4", keep_all.model_copy(update={"flat_tile_std": 2.0}), "b"
    )
    kept = {r["pair_id"] for o in outputs for r in o.records}
    flat = [s for o in outputs for s in o.skips if s["reason"] == Reason.FLAT_TILE]
    records_to_table(flat, PAIR_SKIP_SCHEMA)
    assert flat, "the product photos' white margins give blank tiles"
    dropped = {f"{s['image_id']}_{s['variant']}_{s['tile_y']}_{s['tile_x']}" for s in flat}
    assert kept | dropped == set(every) and not kept & dropped  # every tile is a pair or a recorded skip
    _, shards = read_input_shards(local_storage, partition)
    images = {row["image_id"]: (shard, row) for shard, rows in shards for row in rows}
    for key in dropped | set(list(kept)[:5]):
        record = every[key]
        shard, row = images[record["image_id"]]
        hr = get_recipe("bicubic_x4").crop_hr(
            decode_hr(read_member(local_storage, shard.path, row["offset"], row["size"]))
        )
        tile = hr[
            record["tile_y"] : record["tile_y"] + record["hr_height"],
            record["tile_x"] : record["tile_x"] + record["hr_width"],
        ]
        assert (rgb_to_y(tile[::2, ::2]).std() < 2.0) == (key in dropped)
        assert key not in dropped or record["psnr_y"] > 50  # blank for bicubic too


def test_shards_roll_over_past_the_target_size(local_storage, images_partition):
    partition = images_partition(local_storage)
    config = PairsConfig(hr_tile=240, min_tile=96, shard_target_bytes=1 << 16)
    outputs = run_shards(local_storage, partition, "bicubic_x4", config)
    names = [f.name for o in outputs for f in o.files]
    assert len(names) > len(outputs) and "shards/000000-001.tar" in names
    assert {r["shard"] for o in outputs for r in o.records} == set(names)


def test_undecodable_image_is_skipped_and_a_corrupt_shard_is_an_error(local_storage):
    writer = PartitionWriter(local_storage, "images", "2026-01-01")
    with ShardWriter(sink=lambda path, name: writer.upload(name, path)) as shards:
        location = shards.add("deadbeef", {"jpg": b"\xff\xd8 not really a jpeg"})
    entry = writer.files["shards/000000.tar"]
    from pipeline.pairs.make import InputShard

    shard = InputShard("2026-01-01", entry.name, f"images/2026-01-01/{entry.path}", entry.size, entry.sha256)
    offset, size = location.members["jpg"]
    row = {"image_id": "deadbeef", "product_id": "p", "split": "train", "shard": entry.name, "offset": offset,
           "size": size, "partition": "2026-01-01"}  # fmt: skip
    output = make_pairs_for_shard(local_storage.root, {}, shard, [row], "bicubic_x2", CONFIG, "out")
    assert output.records == [] and output.files == []
    assert [s["reason"] for s in output.skips] == [Reason.DECODE_ERROR]

    tampered = dataclasses.replace(shard, sha256="0" * 64)
    with pytest.raises(ManifestError, match="does not match its manifest"):
        make_pairs_for_shard(local_storage.root, {}, tampered, [row], "bicubic_x2", CONFIG, "out")


def test_a_bug_past_the_decoder_fails_the_task_instead_of_becoming_skips(
    local_storage, images_partition, monkeypatch
):
    """Only Pillow's decode errors are skips: a bug in the labels or in decoding itself must raise."""
    from pipeline.pairs import make

    images_partition(local_storage)
    _, shards = read_input_shards(local_storage, "2026-11-20")
    shard, rows = shards[0]

    def broken_metric(*args, **kwargs):
        raise ZeroDivisionError("a regression in the quality metrics")

    with monkeypatch.context() as patch:
        patch.setattr(make, "measure_degradation", broken_metric)
        with pytest.raises(ZeroDivisionError, match="regression"):
            make_pairs_for_shard(local_storage.root, {}, shard, rows, "bicubic_x2", CONFIG, "out")

    def broken_open(*args, **kwargs):
        raise TypeError("a bug in the decode step, not bad bytes")

    with monkeypatch.context() as patch:
        patch.setattr(make.Image, "open", broken_open)
        with pytest.raises(TypeError, match="not bad bytes"):
            make_pairs_for_shard(local_storage.root, {}, shard, rows, "bicubic_x2", CONFIG, "out")


@pytest.mark.parametrize(
    "data",
    [b"\x89PNG\r\n\x1a\n" + b"\0" * 40, b"\xff\xd8\xff\xe0 truncated", b"GIF89a", b""],
    ids=["broken-png", "truncated-jpeg", "gif-header-only", "empty"],
)
def test_decoder_failures_are_the_listed_errors(data):
    from pipeline.clean.normalize import DECODE_ERRORS

    with pytest.raises(DECODE_ERRORS):
        decode_hr(data)
