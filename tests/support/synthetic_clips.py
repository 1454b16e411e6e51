"""A tiny real clip set for the training tests: `pairs/synthetic_clips_x4/2026-11-24` built by the real
samples stage (pipeline.pairs.job.build_pairs) from 20 committed product photos: 2 clips of 5 frames of 64 px
(16 px LR) per photo, 64 KiB shards."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.pairs.config import PairsConfig
from pipeline.pairs.job import build_pairs
from pipeline.storage import Storage
from tests.support.image_partitions import write_image_partition

PARTITION = "2026-11-24"


@pytest.fixture(scope="session")
def clips_root(shared_data: Path, tmp_path_factory) -> Storage:
    from distributed import Client

    from pipeline.cluster import start_local_cluster

    storage = Storage(f"file://{tmp_path_factory.mktemp('synthetic-clips')}/root")
    photos = sorted((shared_data / "products" / "magento_luma").glob("*.jpg"))[::20][:20]
    write_image_partition(storage, PARTITION, photos, max_side=320, shard_target_bytes=200_000)
    config = PairsConfig(
        recipes=["synthetic_clips_x4"],
        shard_target_bytes=1 << 16,
        clips={"frames": 5, "side": 64, "variants": 2},
    )
    with start_local_cluster(1, processes=False) as cluster, Client(cluster) as client:
        build_pairs(storage, "synthetic_clips_x4", [PARTITION], config, client=client)
    return storage
