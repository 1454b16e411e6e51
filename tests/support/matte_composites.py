"""A tiny real matte-composite set for the training tests: `pairs/matte_composites/2026-11-22` built by the
real samples stage (pipeline.pairs.job.build_pairs) from 16 committed studio product photos: 2 composites
of 64 px per photo over procedural backgrounds and Set5 scenes, 64 KiB shards."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.pairs.config import PairsConfig
from pipeline.pairs.job import build_pairs
from pipeline.storage import Storage
from tests.support.image_partitions import write_image_partition

PARTITION = "2026-11-22"
SIDE = 64


@pytest.fixture(scope="session")
def matte_root(shared_data: Path, tmp_path_factory) -> Storage:
    """pairs/matte_composites/2026-11-22 of 16 product photos (every 25th, so many products)."""
    from distributed import Client

    from pipeline.cluster import start_local_cluster

    storage = Storage(f"file://{tmp_path_factory.mktemp('matte-composites')}/root")
    photos = sorted((shared_data / "products" / "magento_luma").glob("*.jpg"))[::25][:16]
    write_image_partition(storage, PARTITION, photos, max_side=160, shard_target_bytes=200_000)
    config = PairsConfig(
        recipes=["matte_composites"],
        shard_target_bytes=1 << 16,
        matte={"side": SIDE, "variants": 2, "scenes": str(shared_data / "sr_benchmarks" / "Set5"),
               "matte": {"work_long_side": 128}},
    )  # fmt: skip
    with start_local_cluster(1, processes=False) as cluster, Client(cluster) as client:
        build_pairs(storage, "matte_composites", [PARTITION], config, client=client)
    return storage
