"""The synthetic clips family: clips match their shard members and regenerate from the stored photo and
params bit for bit; the recorded motion is the motion between the frames; a blank photo is skipped with a
reason; on Dask the partition (of the H.264 real-world variant) is committed, gated and byte-identical
across worker counts."""

from __future__ import annotations

import io
import json

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest

from pipeline.commit import read_manifest, verify
from pipeline.pairs.clips import make_clips_for_shard
from pipeline.pairs.config import PairsConfig
from pipeline.pairs.job import build_pairs, read_input_shards
from pipeline.pairs.make import decode_hr
from pipeline.shards import read_member
from pipeline.tile_codec import decode_tile
from pipeline.video.clips import render_clip, unstack_frames
from schemas.clip_samples import CLIP_SAMPLE_SCHEMA, MEMBERS
from schemas.reasons import Reason
from schemas.validate import conform, records_to_table
from tests.support.image_partitions import write_image_partition

PARTITION = "2026-11-23"
RECIPE = "synthetic_clips_x4"


@pytest.fixture
def photos_partition(shared_data, tmp_path):
    """`images/2026-11-23`: three product photos and one blank white image, 400 px."""
    from PIL import Image

    products = shared_data / "products" / "magento_luma"
    photos = [products / n for n in ("mh02-black_main.jpg", "wj03-red_back.jpg", "mt07-gray_back.jpg")]
    blank = tmp_path / "blank.png"
    Image.new("RGB", (300, 300), (255, 255, 255)).save(blank)

    def write(storage):
        write_image_partition(storage, PARTITION, [*photos, blank], max_side=400, shard_target_bytes=20_000)
        return PARTITION

    return write


@pytest.fixture
def config():
    return PairsConfig(recipes=[RECIPE], clips={"frames": 5, "side": 64, "variants": 2})


def test_clips_match_their_members_and_regenerate_bit_for_bit(local_storage, photos_partition, config):
    partition = photos_partition(local_storage)
    _, shards = read_input_shards(local_storage, partition)
    assert len(shards) >= 2
    outputs = [make_clips_for_shard(local_storage.root, local_storage.options, shard, rows, RECIPE, config, "out")
               for shard, rows in shards]  # fmt: skip
    records = [r for o in outputs for r in o.records]
    conform(records_to_table(records, CLIP_SAMPLE_SCHEMA), CLIP_SAMPLE_SCHEMA)
    assert len(records) == 3 * 2 and {r["variant"] for r in records} == {0, 1}
    skips = [s for o in outputs for s in o.skips]
    assert sorted((s["reason"], s["variant"]) for s in skips) == [
        (Reason.FLAT_TILE.value, 0),
        (Reason.FLAT_TILE.value, 1),
    ]
    stored = {}
    for shard, rows in shards:
        data = local_storage.read_bytes(shard.path)
        stored.update({row["image_id"]: data[row["offset"] : row["offset"] + row["size"]] for row in rows})
    for record in records:
        hr, lr = (unstack_frames(decode_tile(read_member(local_storage, f"out/{record['shard']}",
                  record[f"{m}_offset"], record[f"{m}_size"])), 5) for m in MEMBERS)  # fmt: skip
        assert hr.shape == (5, 64, 64, 3) and lr.shape == (5, 16, 16, 3)
        params = json.loads(record["params"])
        again = render_clip(decode_hr(stored[record["image_id"]]), params, config.clips)
        assert np.array_equal(hr, again.hr) and np.array_equal(lr, again.lr), record["sample_id"]
        assert 0.25 <= record["motion_lr"] <= 2.1


def test_the_recorded_matrices_are_the_motion_between_frames(shared_data):
    """Frame 0 warped by the recorded motion 0 -> 4 lands on frame 4 (up to resampling, away from borders)."""
    from PIL import Image

    from pipeline.video.clips import clip_params, product_box
    from pipeline.video.config import ClipsConfig

    photo = np.asarray(
        Image.open(shared_data / "products" / "magento_luma" / "wj03-red_back.jpg").convert("RGB")
    )
    clips = ClipsConfig(frames=5, side=128, max_turn_deg=0.5, max_zoom=0.004)
    params = clip_params("id", 0, photo.shape, clips, product_box(photo))
    clip = render_clip(photo, params, clips)

    def full(matrix):
        return np.vstack([np.array(matrix), [0, 0, 1]])

    # frame-4 pixel -> photo -> frame-0 pixel
    four_to_zero = (np.linalg.inv(full(params["matrices"][0])) @ full(params["matrices"][4]))[:2]
    predicted = cv2.warpAffine(
        clip.hr[0], four_to_zero, (128, 128), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP
    )
    inner = (slice(24, 104), slice(24, 104))
    error = np.abs(predicted[inner].astype(float) - clip.hr[4][inner]).mean()
    shifted = np.abs(clip.hr[0][inner].astype(float) - clip.hr[4][inner]).mean()
    assert error < 3.0 and shifted > 3 * error  # the frames moved, and by exactly the recorded motion


def _committed_bytes(storage, partition):
    manifest = read_manifest(storage, f"pairs/{RECIPE}", partition)
    verify(storage, manifest, checksums=True)
    base = f"pairs/{RECIPE}/{partition}"
    return manifest, {
        f.name: storage.read_bytes(f"{base}/{f.path}") for f in manifest.files if f.name != "validation.json"
    }


def test_clips_are_committed_on_dask_and_identical_across_worker_counts(
    local_storage, tmp_path, photos_partition, dask_client2
):
    from distributed import Client

    from pipeline.cluster import start_local_cluster
    from pipeline.storage import Storage

    # the real-world variant: its H.264 re-encode is the part whose bytes could depend on the worker
    config = PairsConfig(
        recipes=[RECIPE], clips={"frames": 5, "side": 64, "variants": 2, "lr_reencode": True}
    )
    partition = photos_partition(local_storage)
    summary = build_pairs(local_storage, RECIPE, [partition], config, client=dask_client2)
    manifest, two_workers = _committed_bytes(local_storage, partition)
    assert manifest.counts["samples"] == summary.pairs == 6
    assert manifest.counts["skipped_flat_tile"] == 2
    conform(pq.read_table(io.BytesIO(two_workers["index.parquet"])), CLIP_SAMPLE_SCHEMA)

    other = Storage(f"file://{tmp_path / 'one-worker'}")
    photos_partition(other)
    with start_local_cluster(1) as cluster, Client(cluster) as client:
        build_pairs(other, RECIPE, [partition], config, client=client)
    _, one_worker = _committed_bytes(other, partition)
    assert one_worker == two_workers  # every shard and the index, byte for byte
