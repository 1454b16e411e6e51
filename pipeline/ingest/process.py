"""Process: fetch images and clean them on a process pool while the crawler keeps fetching.

In: `FetchRequest`s (one per distinct URL), a `CrawlConfig`, a `CleanConfig`, a worker count and a `Spool`.
Out: one `Processed` per request, in input order: the `FetchResult` (its bytes dropped) and either a
`ProcessedImage` whose stored bytes wait in the spool, or the `Rejection` from cleaning.

`process_image` is the pure per-image step (normalize -> image id, pHash and colour signature ->
quality metrics and flags). Only `normalize` judges the bytes: every decoder failure comes back from it
as a `Rejection` (`decode_error`, `not_an_image`, `decompression_bomb`...). An exception raised past it
(a bug in the metrics, hashing or spooling, a worker killed for memory) is not data: it propagates, with
the URL in a note, and fails the run, which can simply be rerun once fixed.
`fetch_and_process` runs `crawl.global_concurrency` fetch tasks on one event loop; each fetches one URL,
hands the bytes to the pool and only then takes the next URL. So at most that many bodies are in memory
at once, and when the CPUs fall behind the crawler waits instead of piling up bytes. Accepted stored bytes
go to an append-only spool file on local disk, not memory, until the writer shards them in image_id order.

`process_image` is a pure function of the bytes, so a body is cleaned once: the event loop takes the
sha256 of every fetched body, and a body whose bytes were already cleaned (or are being cleaned) reuses
that result - the same `ProcessedImage` and spool slot, or the same `Rejection` - instead of going to a
worker again and being spooled again. Catalogs list one photo under many URLs (CDN query strings, sizes
that redirect to one file): those rows still get a `Processed` each and end as exact duplicates through
the shared image_id, exactly as if every copy had been cleaned.
"""

from __future__ import annotations

import asyncio
import hashlib
import multiprocessing
import os
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace

from pipeline.clean import (
    CleanConfig,
    Rejection,
    color_signature,
    flags,
    image_id,
    measure,
    normalize,
    phash,
)
from pipeline.crawl import CrawlConfig, FetchRequest, FetchResult, fetch_one, open_fetch_context


@dataclass(frozen=True)
class ProcessedImage:
    """One cleaned image; `stored_bytes` is None once the bytes are in the spool (`spool_at`)."""

    image_id: str
    phash: int
    color_signature: bytes  # hashing.color_signature: near duplicates also need close colours
    width: int
    height: int
    source_format: str
    stored_format: str
    reencoded: bool
    bytes_sha256: str
    stored_size: int
    normalize_flags: tuple[str, ...]
    metrics: dict[str, float | None]
    quality_flags: tuple[str, ...]
    stored_bytes: bytes | None = None
    spool_at: tuple[int, int] | None = None  # (offset, size) in the spool


@dataclass(frozen=True)
class Processed:
    """What became of one request: the fetch result (content dropped) and the image or the rejection."""

    fetch: FetchResult
    image: ProcessedImage | None = None
    rejection: Rejection | None = None


class Spool:
    """An append-only local file holding stored image bytes between cleaning and sharding."""

    def __init__(self, workdir: str | None = None):
        # closed by close() / the context manager, not by a with-block here
        self._file = tempfile.TemporaryFile(prefix="crisp-spool-", dir=workdir)  # noqa: SIM115
        self._end = 0

    def append(self, data: bytes) -> tuple[int, int]:
        self._file.seek(self._end)
        self._file.write(data)
        at = (self._end, len(data))
        self._end += len(data)
        return at

    @property
    def size(self) -> int:
        """Bytes appended so far."""
        return self._end

    def read(self, at: tuple[int, int]) -> bytes:
        offset, size = at
        self._file.seek(offset)
        return self._file.read(size)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def process_image(data: bytes, config: CleanConfig) -> ProcessedImage | Rejection:
    """Normalize, hash and measure one image; bad bytes come back as a `Rejection`."""
    normalized = normalize(data, config)
    if isinstance(normalized, Rejection):
        return normalized
    pixels, picture = normalized.pixels, normalized.image  # one decoded image feeds every measurement
    metrics = measure(pixels, normalized.stored_format, normalized.stored_bytes, picture)
    return ProcessedImage(
        image_id=image_id(pixels),
        phash=phash(pixels, picture),
        color_signature=color_signature(pixels, picture),
        width=normalized.width,
        height=normalized.height,
        source_format=normalized.source_format,
        stored_format=normalized.stored_format,
        reencoded=normalized.reencoded,
        bytes_sha256=hashlib.sha256(normalized.stored_bytes).hexdigest(),
        stored_size=len(normalized.stored_bytes),
        normalize_flags=tuple(sorted(normalized.flags)),
        metrics=asdict(metrics),
        quality_flags=tuple(flags(metrics, normalized.width, normalized.height, config.quality)),
        # unchanged originals are not sent back: the caller still holds those bytes
        stored_bytes=normalized.stored_bytes if normalized.reencoded else None,
    )


def fetch_and_process(
    requests: Sequence[FetchRequest],
    crawl: CrawlConfig,
    clean: CleanConfig,
    spool: Spool,
    workers: int | None = None,
    start_method: str = "forkserver",
    progress: Callable[[int, int], None] | None = None,
    reuse_identical_bodies: bool = True,
) -> list[Processed]:
    """Fetch and clean every request (see the module docstring); results in input order.

    `reuse_identical_bodies=False` cleans and spools every fetched body, even repeated bytes: the same
    outcomes, only slower (kept to prove exactly that)."""
    workers = workers or os.cpu_count() or 1
    if workers < 1:
        raise ValueError(f"workers={workers}: need at least one worker process")
    if not requests:
        return []
    context = multiprocessing.get_context(start_method)
    if start_method == "forkserver":
        # Workers fork from a server that already imported Pillow, numpy and the cleaner: fast starts.
        context.set_forkserver_preload([__name__])
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        return asyncio.run(_run(requests, crawl, clean, spool, pool, progress, reuse_identical_bodies))


async def _run(
    requests: Sequence[FetchRequest],
    crawl: CrawlConfig,
    clean: CleanConfig,
    spool: Spool,
    pool: ProcessPoolExecutor,
    progress: Callable[[int, int], None] | None,
    reuse_identical_bodies: bool,
) -> list[Processed]:
    loop = asyncio.get_running_loop()
    pending = iter(enumerate(requests))
    results: list[Processed | None] = [None] * len(requests)
    done = 0
    # sha256 of a fetched body -> the task cleaning it: later copies await it instead of a worker
    cleaning: dict[bytes, asyncio.Future[ProcessedImage | Rejection]] = {}

    async def clean_once(content: bytes, url: str) -> ProcessedImage | Rejection:
        # Bad bytes come back as a Rejection from `normalize`; anything raised here is a bug in the
        # cleaner (metrics, hashing) or a dead worker (BrokenProcessPool), and fails the run.
        try:
            outcome = await loop.run_in_executor(pool, process_image, content, clean)
        except Exception as exc:
            exc.add_note(f"raised while cleaning the body fetched from {url}")
            raise
        if isinstance(outcome, Rejection):
            return outcome
        stored = outcome.stored_bytes if outcome.stored_bytes is not None else content
        return replace(outcome, stored_bytes=None, spool_at=spool.append(stored))

    async def clean_bytes(fetched: FetchResult) -> Processed:
        content = fetched.content or b""
        fetched = replace(fetched, content=None)
        if reuse_identical_bodies:
            digest = hashlib.sha256(content).digest()
            task = cleaning.get(digest)
            if task is None:
                task = cleaning[digest] = asyncio.ensure_future(clean_once(content, fetched.url))
            del content  # a copy's bytes are not needed: the first copy's task holds them while it runs
            outcome = await task
        else:
            outcome = await clean_once(content, fetched.url)
        if isinstance(outcome, Rejection):
            return Processed(fetched, rejection=outcome)
        return Processed(fetched, image=outcome)

    async def worker(context) -> None:
        nonlocal done
        for index, request in pending:  # shared iterator: each request is taken once
            fetched = await fetch_one(request, context)
            results[index] = await clean_bytes(fetched) if fetched.ok else Processed(fetched)
            done += 1
            if progress is not None:
                progress(done, len(requests))

    async with open_fetch_context(crawl) as context:
        tasks = [
            asyncio.create_task(worker(context)) for _ in range(min(crawl.global_concurrency, len(requests)))
        ]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    missing = [requests[i].key for i, r in enumerate(results) if r is None]
    if missing:
        raise RuntimeError(f"{len(missing)} request(s) got no result, e.g. {missing[:3]}: this is a bug")
    return [r for r in results if r is not None]
