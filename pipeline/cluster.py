"""Connect to a Dask cluster: a running scheduler by address, or a LocalCluster sized to the machine.

Used by every Dask stage (ingest, pairs).

In: an optional scheduler address (else DASK_SCHEDULER_ADDRESS) and an optional worker count. Out: a
`distributed.Client` inside a context manager that closes what it started (and only that), or from
`start_local_cluster` a `LocalCluster` for callers that manage their own client.
The local default is one single-threaded worker process per core: the per-shard work is CPU-bound
numpy/Pillow code, so processes, not threads, give the parallelism. The scheduler's HTTP endpoint
(health, metrics; the dashboard only with bokeh) listens on a free loopback port: Dask's default 8787
would collide with any other cluster on the machine and warn "Port 8787 is already in use".

Worker memory allocator: Dask's nannies start every worker process with MALLOC_TRIM_THRESHOLD_=65536
(`distributed.nanny.pre-spawn-environ`). Setting any trim threshold turns off glibc's dynamic mmap
threshold, so every array over 128 KiB is a fresh mmap that page-faults in and is unmapped on free; the
per-shard work allocates many such temporaries (tiles, float planes) and ran 2-3x slower per task. Local
clusters here are started without it. For a remote cluster (`--scheduler`), start the workers the same
way: set `DASK_DISTRIBUTED__NANNY__PRE_SPAWN_ENVIRON="{'MALLOC_TRIM_THRESHOLD_': None}"` in the worker
containers' environment (or `distributed: {nanny: {pre-spawn-environ: {MALLOC_TRIM_THRESHOLD_: null}}}`
in their Dask config file); the plain `DASK_..._MALLOC_TRIM_THRESHOLD_` variable does not work because
Dask lower-cases the key. Any explicit MALLOC_TRIM_THRESHOLD_ in a worker's environment wins over the
config, and a nanny started with Dask's default leaks the variable into its own process environment.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger(__name__)

SCHEDULER_ENV = "DASK_SCHEDULER_ADDRESS"  # Dask's own variable for a running scheduler's address

# Dask config key of the allocator setting its nannies put into every worker's environment (see above).
TRIM_THRESHOLD_KEY = "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_"
LOCAL_DASHBOARD = "127.0.0.1:0"  # loopback only, any free port: no clash, no warning, not exposed


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


def start_local_cluster(n_workers: int | None = None, **cluster_kwargs: Any) -> Any:
    """A running `distributed.LocalCluster` of single-threaded worker processes (one per core by
    default), whose workers keep glibc's default allocator tuning; `cluster_kwargs` override the rest."""
    # Import distributed before touching its config: setting a distributed.* key first leaves its
    # defaults half loaded, and the next cluster start fails with KeyError 'comm'.
    import dask
    import distributed

    options: dict[str, Any] = {
        "n_workers": local_worker_count(n_workers),
        "threads_per_worker": 1,
        "processes": True,
        "dashboard_address": LOCAL_DASHBOARD,
        **cluster_kwargs,
    }
    # The nannies read the setting when they are built, so it also holds for workers they restart later.
    with dask.config.set({TRIM_THRESHOLD_KEY: None}):
        cluster = distributed.LocalCluster(**options)
    log.info(
        "dask: started a LocalCluster of %d worker process(es), scheduler %s, dashboard %s",
        options["n_workers"], cluster.scheduler_address, cluster.dashboard_link or "off",
    )  # fmt: skip
    return cluster


@contextmanager
def dask_client(
    scheduler_address: str | None = None, n_workers: int | None = None, connect_timeout: float = 30.0
) -> Iterator:
    """Yield a Client to `scheduler_address` (or DASK_SCHEDULER_ADDRESS), else to a fresh LocalCluster."""
    from distributed import Client

    address = scheduler_address or os.environ.get(SCHEDULER_ENV) or None
    if address:
        log.info("dask: connecting to the scheduler at %s", address)
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
    cluster = start_local_cluster(n_workers)
    try:
        with Client(cluster) as client:
            yield client
    finally:
        cluster.close()
