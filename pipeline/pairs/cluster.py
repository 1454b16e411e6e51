"""Connect to a Dask cluster: a running scheduler by address, or a LocalCluster sized to the machine.

In: an optional scheduler address (else DASK_SCHEDULER_ADDRESS) and an optional worker count. Out: a
`distributed.Client` inside a context manager that closes what it started (and only that).
The local default is one single-threaded worker process per core: the per-shard work is CPU-bound
numpy/Pillow code, so processes, not threads, give the parallelism; the scheduler's HTTP port is random.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from pipeline.pairs.config import SCHEDULER_ENV


def local_worker_count(n_workers: int | None = None) -> int:
    """Workers for a LocalCluster: `n_workers`, else the CPUs this process may use."""
    if n_workers is not None:
        if n_workers < 1:
            raise ValueError(f"n_workers={n_workers} must be >= 1")
        return n_workers
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


@contextmanager
def dask_client(
    scheduler_address: str | None = None, n_workers: int | None = None, connect_timeout: float = 30.0
) -> Iterator:
    """Yield a Client to `scheduler_address` (or DASK_SCHEDULER_ADDRESS), else to a fresh LocalCluster."""
    from distributed import Client, LocalCluster

    address = scheduler_address or os.environ.get(SCHEDULER_ENV) or None
    if address:
        try:
            client = Client(address, timeout=f"{connect_timeout}s")
        except OSError as exc:
            raise ValueError(
                f"cannot reach the Dask scheduler at {address!r} ({exc}); check --scheduler / "
                f"{SCHEDULER_ENV}, or unset both to use a local cluster"
            ) from None
        try:
            yield client
        finally:
            client.close()
        return
    cluster = LocalCluster(
        n_workers=local_worker_count(n_workers),
        threads_per_worker=1,
        processes=True,
        # the scheduler's HTTP endpoint (health, metrics; the dashboard only with bokeh) on a free port:
        # None still means 8787, which a second cluster on the machine would collide with
        dashboard_address=":0",
    )
    try:
        with Client(cluster) as client:
            yield client
    finally:
        cluster.close()
