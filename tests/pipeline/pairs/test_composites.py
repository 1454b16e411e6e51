"""The matte composites family: samples match their shard members and regenerate from the stored photo and
params bit for bit; a photo off white is skipped with a reason; on Dask the partition is committed, gated
and byte-identical across worker counts."""

from __future__ import annotations

import io
import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from pipeline.commit import read_manifest, verify
from pipeline.matte import compose, estimate_matte
from pipeline.pairs.composites import load_scenes, make_composites_for_shard
from pipeline.pairs.config import PairsConfig
from pipeline.pairs.job import build_pairs, read_input_shards
from pipeline.pairs.make import decode_hr
from pipeline.shards import read_member
from pipeline.tile_codec import decode_mask, decode_tile
from schemas.matte_samples import MATTE_SAMPLE_SCHEMA, MEMBERS
from schemas.reasons import Reason
from schemas.validate import conform, records_to_table
from tests.support.image_partitions import write_image_partition

PARTITION = "2026-11-21"
RECIPE = "matte_composites"


@pytest.fixture
def photos_partition(shared_data):
    """`images/2026-11-21`: three studio photos on white and one T91 scene (not on white), 240 px."""
    products = shared_data / "products" / "magento_luma"
    photos = [products / n for n in ("mh02-black_main.jpg", "wj03-red_back.jpg", "mt07-gray_back.jpg")]
    photos.append(shared_data / "sr_train" / "T91" / "t1.png")

    def write(storage):
        write_image_partition(storage, PARTITION, photos, max_side=240, shard_target_bytes=16_000)
        return PARTITION

    return write


@pytest.fixture
def config(shared_data):
    return PairsConfig(
        recipes=[RECIPE],
        matte={"side": 64, "variants": 3, "scenes": str(shared_data / "sr_benchmarks" / "Set5"),
               "matte": {"work_long_side": 128}},
    )  # fmt: skip


def test_samples_match_their_members_and_regenerate_bit_for_bit(local_storage, photos_partition, config):
    partition = photos_partition(local_storage)
    _, shards = read_input_shards(local_storage, partition)
    assert len(shards) >= 2
    outputs = [make_composites_for_shard(local_storage.root, local_storage.options, shard, rows, RECIPE, config,
                                         "out") for shard, rows in shards]  # fmt: skip
    records = [r for o in outputs for r in o.records]
    conform(records_to_table(records, MATTE_SAMPLE_SCHEMA), MATTE_SAMPLE_SCHEMA)
    assert len(records) == 3 * 3 and {r["variant"] for r in records} == {0, 1, 2}
    skips = [s for o in outputs for s in o.skips]
    assert [s["reason"] for s in skips] == [Reason.MATTE_NOT_WHITE_BACKGROUND.value]
    stored = {}
    for shard, rows in shards:
        data = local_storage.read_bytes(shard.path)
        stored.update({row["image_id"]: data[row["offset"] : row["offset"] + row["size"]] for row in rows})
    scenes = load_scenes(local_storage, config.matte)
    assert sorted(scenes) == ["baby.png", "bird.png", "butterfly.png", "head.png", "woman.png"]
    for record in records[::2]:
        blobs = [read_member(local_storage, f"out/{record['shard']}", record[f"{m}_offset"], record[f"{m}_size"])
                 for m in MEMBERS]  # fmt: skip
        members = [
            decode_mask(b) if m == "alpha" else decode_tile(b) for m, b in zip(MEMBERS, blobs, strict=True)
        ]
        estimate = estimate_matte(decode_hr(stored[record["image_id"]]), config.matte.matte)
        again = compose(estimate.alpha, estimate.foreground, json.loads(record["params"]), 64, scenes)
        for got, want in zip(
            members, (again.image, again.alpha, again.foreground, again.background), strict=True
        ):
            assert np.array_equal(got, want), record["sample_id"]
        assert record["background"] == json.loads(record["params"])["background"]["kind"]
        assert record["alpha_mean"] == pytest.approx(members[1].mean() / 255)


def _committed_bytes(storage, partition):
    manifest = read_manifest(storage, f"pairs/{RECIPE}", partition)
    verify(storage, manifest, checksums=True)
    base = f"pairs/{RECIPE}/{partition}"
    files = {
        f.name: storage.read_bytes(f"{base}/{f.path}") for f in manifest.files if f.name != "validation.json"
    }
    return manifest, files


def test_composites_are_committed_on_dask_and_identical_across_worker_counts(
    local_storage, tmp_path, photos_partition, config, dask_client2
):
    from distributed import Client

    from pipeline.cluster import start_local_cluster
    from pipeline.storage import Storage

    partition = photos_partition(local_storage)
    summary = build_pairs(local_storage, RECIPE, [partition], config, client=dask_client2)
    manifest, two_workers = _committed_bytes(local_storage, partition)
    assert manifest.counts["samples"] == summary.pairs == 9
    assert manifest.counts["skipped_matte_not_white_background"] == 1
    conform(pq.read_table(io.BytesIO(two_workers["index.parquet"])), MATTE_SAMPLE_SCHEMA)

    other = Storage(f"file://{tmp_path / 'one-worker'}")
    photos_partition(other)
    with start_local_cluster(1) as cluster, Client(cluster) as client:
        build_pairs(other, RECIPE, [partition], config, client=client)
    _, one_worker = _committed_bytes(other, partition)
    assert one_worker == two_workers  # every shard and the index, byte for byte
