"""Fixtures for the pairs tests: small committed image partitions and one shared 2-worker Dask cluster."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.image_partitions import write_image_partition

PARTITION = "2026-11-20"


@pytest.fixture(scope="session")
def pair_photos(shared_data: Path) -> list[Path]:
    """Three product photos and two T91 images; t20.png (78x78) is below any min_tile and must be skipped."""
    products = shared_data / "products" / "magento_luma"
    t91 = shared_data / "sr_train" / "T91"
    return [
        products / "lt01.jpg",
        products / "lt02.jpg",
        products / "mb01-blue-0.jpg",
        t91 / "t1.png",
        t91 / "t20.png",
    ]


@pytest.fixture
def images_partition(pair_photos):
    """Write `images/2026-11-20` (photos shrunk to 360 px, about 2 shards) into a storage; returns the name."""

    def write(storage, partition: str = PARTITION, commit: bool = True):
        write_image_partition(
            storage, partition, pair_photos, max_side=360, shard_target_bytes=120_000, commit=commit
        )
        return partition

    return write


@pytest.fixture(scope="session")
def dask_client2():
    """The cluster of the acceptance tests: 2 single-threaded worker processes, as `crisp pairs` starts them."""
    from distributed import Client

    from pipeline.cluster import start_local_cluster

    with start_local_cluster(2) as cluster, Client(cluster) as client:
        yield client
