"""A tiny real quality grid for the training tests: `pairs/quality_grid/2026-11-20` built by the real
samples stage (pipeline.pairs.job.build_pairs) from 14 committed product photos: 96-px canvases, two
families, 64 KiB shards so groups straddle shards."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.pairs.config import PairsConfig
from pipeline.pairs.job import build_pairs
from pipeline.storage import Storage
from tests.support.image_partitions import write_image_partition

PARTITION = "2026-11-20"
FAMILIES = ["gaussian_blur", "jpeg"]
TRAIN_GROUPS, VAL_GROUPS = 12, 2  # the split (by image hash) of the first 14 product photos


@pytest.fixture(scope="session")
def grid_root(shared_data: Path, tmp_path_factory) -> Storage:
    """pairs/quality_grid/2026-11-20 of 14 product photos: 96-px canvases, 2 families, 64 KiB shards."""
    from distributed import Client

    from pipeline.cluster import start_local_cluster

    storage = Storage(f"file://{tmp_path_factory.mktemp('quality-grid')}/root")
    photos = sorted((shared_data / "products" / "magento_luma").glob("*.jpg"))[:14]
    write_image_partition(storage, PARTITION, photos, max_side=128, shard_target_bytes=200_000)
    config = PairsConfig(
        recipes=["quality_grid"],
        shard_target_bytes=1 << 16,  # groups straddle shards
        quality_grid={"canvas_long_side": 96, "min_long_side": 90, "families": FAMILIES},
    )
    # one in-process worker: no process start-up, and the grid's bytes do not depend on the worker count
    with start_local_cluster(1, processes=False) as cluster, Client(cluster) as client:
        build_pairs(storage, "quality_grid", [PARTITION], config, client=client)
    return storage
