"""The quality grid family: samples match their shard members and regenerate from the stored image and
params bit for bit; small images are skipped with a reason; on Dask the partition is committed, gated and
byte-identical across worker counts."""

from __future__ import annotations

import io
import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from pipeline.commit import read_manifest, verify
from pipeline.distort import FAMILIES, LEVELS, distort, quality_canvas
from pipeline.pairs.config import PairsConfig
from pipeline.pairs.grid import GRID_VERSION, canvas_version, make_quality_grid_for_shard
from pipeline.pairs.job import build_pairs, read_input_shards
from pipeline.pairs.make import decode_hr
from pipeline.shards import read_member
from pipeline.tile_codec import decode_tile
from schemas.quality_samples import PRISTINE, QUALITY_SAMPLE_SCHEMA
from schemas.reasons import Reason
from schemas.validate import conform, records_to_table

FAMILIES_UNDER_TEST = ("gaussian_blur", "jpeg", "underexposure")
CONFIG = PairsConfig(
    recipes=["quality_grid"],
    quality_grid={"canvas_long_side": 96, "min_long_side": 90, "families": list(FAMILIES_UNDER_TEST)},
)


def run_shards(storage, partition, config=CONFIG, out_dir="out"):
    _, shards = read_input_shards(storage, partition)
    outputs = [
        make_quality_grid_for_shard(
            storage.root, storage.options, shard, rows, "quality_grid", config, out_dir
        )
        for shard, rows in shards
    ]
    return shards, outputs


def test_samples_match_their_members_and_regenerate_bit_for_bit(local_storage, images_partition):
    partition = images_partition(local_storage)
    shards, outputs = run_shards(local_storage, partition)
    records = [r for o in outputs for r in o.records]
    conform(records_to_table(records, QUALITY_SAMPLE_SCHEMA), QUALITY_SAMPLE_SCHEMA)
    per_grid = 1 + LEVELS * len(FAMILIES_UNDER_TEST)
    groups = {r["group_id"] for r in records}
    assert len(records) == per_grid * len(groups) and len(groups) == 4  # t20.png (78 px) was skipped
    stored = {}
    for shard, rows in shards:
        data = local_storage.read_bytes(shard.path)
        stored.update({row["image_id"]: data[row["offset"] : row["offset"] + row["size"]] for row in rows})
    for record in records[:: per_grid // 3]:  # pristine and a spread of families and levels
        member = read_member(local_storage, f"out/{record['shard']}", record["offset"], record["size"])
        pixels = decode_tile(member)
        side, version = record["canvas_long_side"], canvas_version(record["grid_version"])
        canvas = quality_canvas(decode_hr(stored[record["image_id"]]), side, version)
        params = json.loads(record["params"])
        expected = canvas if record["family"] == PRISTINE else distort(canvas, params)
        assert np.array_equal(pixels, expected), record["sample_id"]
        assert max(pixels.shape[:2]) == 96 and pixels.shape[1::-1] == (record["width"], record["height"])


def test_each_grid_version_names_the_canvas_version_it_was_made_on():
    assert GRID_VERSION == 2 and canvas_version(2) == 2
    assert canvas_version(1) == 1  # recorded version-1 samples regenerate on the version-1 canvas
    with pytest.raises(ValueError, match="unknown quality grid version 7"):
        canvas_version(7)


def test_targets_fall_with_the_level_and_pristine_scores_five(local_storage, images_partition):
    partition = images_partition(local_storage)
    _, outputs = run_shards(local_storage, partition)
    records = [r for o in outputs for r in o.records]
    for group in {r["group_id"] for r in records}:
        mine = [r for r in records if r["group_id"] == group]
        assert [r["target"] for r in mine if r["family"] == PRISTINE] == [5.0]
        for family in FAMILIES_UNDER_TEST:
            targets = [r["target"] for r in sorted(mine, key=lambda r: r["level"]) if r["family"] == family]
            assert len(targets) == LEVELS and all(0 <= t <= 5 for t in targets)
            assert targets == sorted(targets, reverse=True) and targets[0] > targets[-1], (family, targets)


def test_a_small_image_is_skipped_with_a_reason(local_storage, images_partition):
    partition = images_partition(local_storage)
    _, outputs = run_shards(local_storage, partition)
    skips = [s for o in outputs for s in o.skips]
    assert [(s["reason"], s["recipe"]) for s in skips] == [(Reason.TOO_SMALL.value, "quality_grid")]
    assert "min_long_side=90" in skips[0]["detail"]


def test_an_unknown_family_is_refused_before_any_work():
    with pytest.raises(ValueError, match="quality_grid.families"):
        PairsConfig(recipes=["quality_grid"], quality_grid={"families": ["sepia"]})
    assert set(FAMILIES_UNDER_TEST) <= set(FAMILIES)


def _committed_bytes(storage, partition):
    manifest = read_manifest(storage, "pairs/quality_grid", partition)
    verify(storage, manifest, checksums=True)
    base = f"pairs/quality_grid/{partition}"
    files = {
        f.name: storage.read_bytes(f"{base}/{f.path}") for f in manifest.files if f.name != "validation.json"
    }
    return manifest, files


def test_the_grid_is_committed_on_dask_and_identical_across_worker_counts(
    local_storage, tmp_path, images_partition, dask_client2
):
    from distributed import Client

    from pipeline.cluster import start_local_cluster
    from pipeline.storage import Storage

    partition = images_partition(local_storage)
    summary = build_pairs(local_storage, "quality_grid", [partition], CONFIG, client=dask_client2)
    manifest, two_workers = _committed_bytes(local_storage, partition)
    assert manifest.counts["samples"] == summary.pairs == 4 * (1 + LEVELS * len(FAMILIES_UNDER_TEST))
    assert manifest.counts["skipped_too_small"] == 1
    index = pq.read_table(io.BytesIO(two_workers["index.parquet"]))
    conform(index, QUALITY_SAMPLE_SCHEMA)

    other = Storage(f"file://{tmp_path / 'one-worker'}")
    images_partition(other)
    with start_local_cluster(1) as cluster, Client(cluster) as client:
        build_pairs(other, "quality_grid", [partition], CONFIG, client=client)
    _, one_worker = _committed_bytes(other, partition)
    assert one_worker == two_workers  # every shard and the index, byte for byte
