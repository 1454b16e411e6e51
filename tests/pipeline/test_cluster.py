"""dask_client: connects to a scheduler by address (argument or DASK_SCHEDULER_ADDRESS) or starts one."""

from __future__ import annotations

import os

import pytest

from pipeline.cluster import LOCAL_DASHBOARD, SCHEDULER_ENV, dask_client, local_worker_count


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


def test_local_workers_keep_the_default_allocator_and_a_private_http_port(monkeypatch):
    monkeypatch.delenv(SCHEDULER_ENV, raising=False)
    # a nanny started elsewhere in this process with Dask's default would have leaked the variable here
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    omp_threads = os.environ.get("OMP_NUM_THREADS", "1")  # a variable already set wins over Dask's config
    with dask_client(n_workers=1) as client:
        (env,) = client.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_")).values()
        assert env is None  # Dask's 65536 makes every large numpy temporary a fresh mmap
        (threads,) = client.run(lambda: os.environ.get("OMP_NUM_THREADS")).values()
        assert threads == omp_threads  # the rest of Dask's worker environment is kept
        host, port = client.cluster.scheduler.http_server.address, client.cluster.scheduler.http_server.port
        assert host == LOCAL_DASHBOARD.split(":")[0] and port not in (0, 8787)
    assert os.environ.get("MALLOC_TRIM_THRESHOLD_") is None  # and nothing leaked into this process
