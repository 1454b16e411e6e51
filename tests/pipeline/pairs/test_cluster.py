"""dask_client: connects to a scheduler by address (argument or DASK_SCHEDULER_ADDRESS) or starts one."""

from __future__ import annotations

import os

import pytest

from pipeline.pairs.cluster import dask_client, local_worker_count
from pipeline.pairs.config import SCHEDULER_ENV


def test_local_worker_count():
    assert local_worker_count(3) == 3
    assert local_worker_count() >= 1
    with pytest.raises(ValueError, match="n_workers=0"):
        local_worker_count(0)


def test_connects_by_address_and_leaves_the_cluster_running(monkeypatch):
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster:
        with dask_client(cluster.scheduler_address) as client:
            assert client.submit(sum, [1, 2]).result() == 3
        monkeypatch.setenv(SCHEDULER_ENV, cluster.scheduler_address)
        with dask_client() as client:  # the environment variable picks the same scheduler
            assert client.scheduler.address == cluster.scheduler_address
        assert cluster.status.name == "running"


def test_unreachable_scheduler_is_a_clear_error():
    with (
        pytest.raises(ValueError, match="cannot reach the Dask scheduler at 'tcp://127.0.0.1:9'"),
        dask_client("tcp://127.0.0.1:9", connect_timeout=1),
    ):
        pass


def test_default_is_a_local_cluster_of_worker_processes(monkeypatch):
    monkeypatch.delenv(SCHEDULER_ENV, raising=False)
    with dask_client(n_workers=1) as client:
        (worker,) = client.scheduler_info()["workers"].values()
        assert worker["nthreads"] == 1
        assert client.submit(os.getpid).result() != os.getpid()  # a separate process, not a thread
    assert client.status == "closed"
