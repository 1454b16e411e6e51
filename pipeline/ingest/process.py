"""Process: fetch one batch of images and clean them, the per-task work of a distributed ingest.

In: `FetchRequest`s (one per distinct URL), a `CrawlConfig`, a `CleanConfig`, the run's learned quality
model (`scoring.QualityModel`, or None: not scored) and a `VideoConfig`. Out: from `crawl_and_clean`, one
`Processed` per request, in input order: the `FetchResult` (its bytes dropped) and either a
`ProcessedImage` holding the bytes to store, its learned score and compliance measures, a `ProcessedVideo`
(a body whose magic bytes are a video container: its `pipeline.video.probe_video` result and the bytes as
fetched), or the `Rejection` from cleaning. `Spool` is the driver's
append-only local file where those bytes wait until the writer shards them in image_id order.

`process_image` is the pure per-image step (normalize -> the learned score, when there is a model -> image id,
pHash and colour signature -> quality metrics and flags -> main-image compliance); every step works on the one
decoded image. A score under the model's `min_quality` is a `low_quality` Rejection (its detail names the
score and the threshold). Only `normalize` judges the bytes: every decoder failure comes back from it as a
`Rejection` (`decode_error`, `not_an_image`, `decompression_bomb`...). An exception raised past it (a bug in
the metrics, hashing) is not data: it propagates, with the URL in a note, and fails the run, which can simply
be rerun once fixed.

`crawl_and_clean` runs `crawl.global_concurrency` fetch tasks on one event loop; each fetches one URL,
hands the bytes to the cleaning thread and only then takes the next URL, so at most that many bodies are
in memory at once. A body is cleaned once per batch: the sha256 of every fetched body is taken, and a
body whose bytes were already cleaned (or are being cleaned) reuses that result. Catalogs list one photo
under many URLs (CDN query strings, sizes that redirect to one file): those rows still get a `Processed`
each and end as exact duplicates through the shared image_id, exactly as if every copy had been cleaned.
"""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace

from pipeline.clean import (
    CleanConfig,
    Compliance,
    Rejection,
    check_compliance,
    color_signature,
    flags,
    image_id,
    measure,
    normalize,
    phash,
)
from pipeline.crawl import CrawlConfig, FetchRequest, FetchResult, fetch_one, open_fetch_context
from pipeline.crawl.robots import RobotsFile
from pipeline.crawl.sniff import sniff_video_format
from pipeline.ingest.scoring import QualityModel
from pipeline.video.config import VideoConfig
from pipeline.video.probe import VideoProbe, probe_video
from schemas.reasons import Reason


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
    quality_learned: float | None = None  # the learned quality model's score, 0-5; None: not scored
    compliance: Compliance | None = None  # main-image measures (pipeline/clean/compliance.py)


@dataclass(frozen=True)
class ProcessedVideo:
    """One probed video; stored as fetched (`stored_bytes`, None once in the spool at `spool_at`)."""

    probe: VideoProbe
    stored_bytes: bytes | None = None
    spool_at: tuple[int, int] | None = None

    @property
    def bytes_sha256(self) -> str:
        return self.probe.bytes_sha256


@dataclass(frozen=True)
class Processed:
    """What became of one request: the fetch result (content dropped) and the image, the video or the
    rejection."""

    fetch: FetchResult
    image: ProcessedImage | None = None
    rejection: Rejection | None = None
    video: ProcessedVideo | None = None


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


def process_image(
    data: bytes, config: CleanConfig, quality: QualityModel | None = None
) -> ProcessedImage | Rejection:
    """Normalize, score, hash and measure one image; bad bytes, and a score under `quality.min_quality`,
    come back as a `Rejection`."""
    normalized = normalize(data, config)
    if isinstance(normalized, Rejection):
        return normalized
    pixels, picture = normalized.pixels, normalized.image  # one decoded image feeds every measurement
    score = None
    if quality is not None:
        score = quality.score(pixels)  # threads=1: one worker process, one core
        if quality.too_low(score):
            return Rejection(
                Reason.LOW_QUALITY,
                f"learned quality {score:.4f} ({quality.source}) is below ingest.min_quality "
                f"{quality.min_quality:g}",
            )
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
        quality_learned=score,
        compliance=check_compliance(pixels, config.compliance),
    )


def process_body(
    data: bytes, config: CleanConfig, quality: QualityModel | None, video: VideoConfig
) -> ProcessedImage | ProcessedVideo | Rejection:
    """A video container is probed (`probe_video`, its bytes kept as fetched); anything else is cleaned
    as an image (`process_image`)."""
    if sniff_video_format(data) is None:
        return process_image(data, config, quality)
    probe = probe_video(data, video)
    return probe if isinstance(probe, Rejection) else ProcessedVideo(probe)


def crawl_and_clean(
    requests: Sequence[FetchRequest],
    crawl: CrawlConfig,
    clean: CleanConfig,
    reuse_identical_bodies: bool = True,
    run: str | None = None,
    quality: QualityModel | None = None,
    video: VideoConfig | None = None,
) -> list[Processed]:
    """Fetch and clean one batch (a Dask task); one `Processed` per request, in input order, each image
    carrying its stored bytes (`stored_bytes`, the original body when no pixel changed), and its learned
    score when `quality` is given (this process's scorer of that model, built once).

    Fetches run on an event loop, cleaning on one thread beside it (Pillow and numpy release the GIL),
    so sockets keep being served while an image is decoded. A body whose bytes were already cleaned in
    this batch reuses that result (the same `ProcessedImage` object: it is sent back once);
    `reuse_identical_bodies=False` cleans every body again (the same outcomes, only slower). Batches of
    one `run` (an ingest's id) that run in one process share what robots.txt said, so a host's robots.txt
    is fetched once per worker and run, not once per batch."""
    if not requests:
        return []
    robots = _robots_files(run) if run is not None else None
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="crisp-clean") as cleaner:
        return asyncio.run(
            _crawl_and_clean(
                requests,
                crawl,
                clean,
                cleaner,
                reuse_identical_bodies,
                robots,
                quality,
                video or VideoConfig(),
            )
        )


async def _crawl_and_clean(
    requests: Sequence[FetchRequest],
    crawl: CrawlConfig,
    clean: CleanConfig,
    cleaner: ThreadPoolExecutor,
    reuse_identical_bodies: bool,
    robots: dict[str, RobotsFile] | None,
    quality: QualityModel | None,
    video: VideoConfig,
) -> list[Processed]:
    loop = asyncio.get_running_loop()
    pending = iter(enumerate(requests))
    results: list[Processed | None] = [None] * len(requests)
    # sha256 of a fetched body -> the task cleaning it: later copies await it instead of cleaning again
    cleaning: dict[bytes, asyncio.Future[ProcessedImage | ProcessedVideo | Rejection]] = {}

    async def clean_once(content: bytes, url: str) -> ProcessedImage | ProcessedVideo | Rejection:
        # Bad bytes come back as a Rejection from `normalize`; anything raised here is a bug in the
        # cleaner (metrics, hashing), and fails the task and the run.
        try:
            outcome = await loop.run_in_executor(cleaner, process_body, content, clean, quality, video)
        except Exception as exc:
            exc.add_note(f"raised while cleaning the body fetched from {url}")
            raise
        if isinstance(outcome, Rejection) or outcome.stored_bytes is not None:
            return outcome
        return replace(outcome, stored_bytes=content)

    async def clean_bytes(fetched: FetchResult) -> Processed:
        content = fetched.content or b""
        fetched = replace(fetched, content=None)
        if reuse_identical_bodies:
            digest = hashlib.sha256(content).digest()
            task = cleaning.get(digest)
            if task is None:
                task = cleaning[digest] = asyncio.ensure_future(clean_once(content, fetched.url))
            del content  # a copy's bytes are not needed: the first copy's task holds them
            outcome = await task
        else:
            outcome = await clean_once(content, fetched.url)
        if isinstance(outcome, Rejection):
            return Processed(fetched, rejection=outcome)
        if isinstance(outcome, ProcessedVideo):
            return Processed(fetched, video=outcome)
        return Processed(fetched, image=outcome)

    async def worker(context) -> None:
        for index, request in pending:  # shared iterator: each request is taken once
            fetched = await fetch_one(request, context)
            results[index] = await clean_bytes(fetched) if fetched.ok else Processed(fetched)

    async with open_fetch_context(crawl, robots) as context:
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


def _robots_files(run: str) -> dict[str, RobotsFile]:
    """The robots.txt memo of `run` in this process; only the latest few runs' are kept."""
    memo = _ROBOTS.pop(run, None)
    memo = {} if memo is None else memo
    _ROBOTS[run] = memo  # most recent last
    while len(_ROBOTS) > ROBOTS_RUNS_KEPT:
        del _ROBOTS[next(iter(_ROBOTS))]
    return memo


ROBOTS_RUNS_KEPT = 4  # a long-lived worker forgets the robots.txt of older runs
_ROBOTS: dict[str, dict[str, RobotsFile]] = {}
