"""Run one ingest: a catalog feed and a date in, a committed `images/<date>` partition and a summary out.

In: a feed URI, the partition date (YYYY-MM-DD), a `Storage` root, an `IngestConfig` and the settings'
MLflow tracking URI (for `ingest.quality_model`). Out: an `IngestSummary` (accepted images and videos, exact /
near duplicates, rejected by reason, inputs, seconds, images/s, the quality model that scored, the manifest).
Steps: resolve the learned quality model once (`scoring`; a bad one stops the run here) -> read the feed ->
fetch each distinct URL and clean (and score) it on Dask (`distribute`) -> dedup within
the partition and against every committed partition of an EARLIER date (so a backfill or a rerun of an
old date never demotes images that later days already point to), through the persistent dedup index ->
split by product -> rank each product's scored images -> write, gate, commit -> add the committed images
to the dedup index. A body that is a video container is probed instead of cleaned (`process`), deduplicated
against earlier videos (`videos`) and stored in the same shards, with its row in `videos.parquet`. The
manifest's `extra.run.quality_model` names the model that scored (null: none).

Every input row ends in exactly one of accepted / duplicate / rejected; `check_outcomes` enforces it
before anything is written, and the GX gate checks it again. With `retry_failed=True` the committed
partition is the starting point: only its rejected rows whose reason is retryable are fetched again, the
rest of its outcomes are kept as they are (its accepted images also count as already committed for
dedup), and the merge is committed as a new attempt.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from pipeline.commit import PartitionNotCommittedError, SupersededError
from pipeline.crawl import FetchRequest
from pipeline.ingest import dedup_index
from pipeline.ingest.config import IngestConfig
from pipeline.ingest.distribute import fetch_and_process, worker_count
from pipeline.ingest.feed import Feed, FeedRow, read_feed
from pipeline.ingest.outcomes import OutcomeError, check_outcomes, decide_outcomes, load_prior, reject_record
from pipeline.ingest.process import Spool
from pipeline.ingest.read import CommittedPartition, read_image, read_partition_or_none
from pipeline.ingest.scoring import rank_in_product, resolve_quality_model
from pipeline.ingest.videos import decide_video_outcomes, load_prior_videos
from pipeline.ingest.write import write_partition
from pipeline.progress import Progress
from pipeline.scratch import collect_stale_scratch
from pipeline.storage import Storage
from schemas.errors import CrispError
from schemas.manifest import Manifest
from schemas.reasons import is_retryable

__all__ = [
    "IngestConfig",
    "IngestSummary",
    "OutcomeError",
    "PartitionShrinkError",
    "SupersededError",
    "check_outcomes",
    "ingest_partition",
    "parse_partition",
]

log = logging.getLogger(__name__)
PROGRESS_EVERY_S = 30.0  # cadence of the "ingest <date>: done/total" line


@dataclass(frozen=True)
class IngestSummary:
    partition: str
    inputs: int
    accepted: int  # images
    duplicates_exact: int
    duplicates_near: int
    rejected: dict[str, int]  # reason -> rows
    fetched: int  # distinct URLs requested by this run
    seconds: float
    images_per_s: float  # fetched URLs per second, cleaning included
    manifest: Manifest
    unchanged: bool  # the partition already held exactly this content (no new attempt)
    retried: bool = False
    workers: int = 0  # Dask workers the fetching and cleaning ran on
    quality_model: str | None = None  # the learned quality model that scored, e.g. models:/crisp-quality/3
    accepted_videos: int = 0

    @property
    def duplicates(self) -> int:
        return self.duplicates_exact + self.duplicates_near

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data (for XCom and logs)."""
        return {
            "partition": self.partition,
            "inputs": self.inputs,
            "accepted": self.accepted,
            "accepted_videos": self.accepted_videos,
            "duplicates": {"exact": self.duplicates_exact, "near": self.duplicates_near},
            "rejected": dict(self.rejected),
            "fetched": self.fetched,
            "seconds": round(self.seconds, 3),
            "images_per_s": round(self.images_per_s, 2),
            "unchanged": self.unchanged,
            "retried": self.retried,
            "workers": self.workers,
            "quality_model": self.quality_model,
            "attempt_id": self.manifest.attempt_id,
            "content_digest": self.manifest.content_digest,
        }


def parse_partition(value: str) -> str:
    """The partition name for a date given as YYYY-MM-DD; ValueError otherwise."""
    try:
        return date.fromisoformat(value).isoformat() if len(str(value)) == 10 else _bad_date(value)
    except (TypeError, ValueError):
        return _bad_date(value)


def _bad_date(value: Any) -> str:
    raise ValueError(f"partition date {value!r} is not a calendar date in the form YYYY-MM-DD")


def ingest_partition(
    feed_uri: str,
    date: str,
    storage: Storage,
    config: IngestConfig | None = None,
    retry_failed: bool = False,
    progress: Callable[[int, int], None] | None = None,
    run_id: str | None = None,
    replace: bool = False,
    client: Any = None,
    tracking_uri: str | None = None,
) -> IngestSummary:
    """Ingest `feed_uri` into `images/<date>` under `storage` (see the module docstring).

    `progress(done, total)` is called as each distinct URL is fetched and cleaned. The periodic
    "done/total, rate, ETA" line is logged at INFO, or at DEBUG when `progress` is given (the caller
    shows progress itself: a bar, a task log); the start and summary lines are INFO either way.
    The URLs are fetched and cleaned on Dask: `client` when given, else the scheduler at
    `config.scheduler_address` / DASK_SCHEDULER_ADDRESS, else a LocalCluster of `config.workers` started
    for this run. `replace=True` lets the run replace a committed partition even when it keeps fewer of its accepted
    images than `config.min_kept_share` (`PartitionShrinkError` otherwise). `tracking_uri`: the settings'
    `mlflow_tracking_uri`, where `config.quality_model` finds registered models (None: SQLite under the
    storage root); a model that cannot be used is a `QualityModelError` before anything is fetched."""
    partition = parse_partition(date)
    config = config or IngestConfig()
    quality = resolve_quality_model(config, storage.root, tracking_uri)
    collect_stale_scratch(config.workdir)  # shard folders of killed runs on this host
    started = time.perf_counter()
    now = datetime.now(UTC)
    options = storage.options if feed_uri.startswith(f"{storage.scheme}://") else None
    feed = read_feed(feed_uri, options, config.feed)
    committed = read_partition_or_none(storage, partition)
    if retry_failed:
        if committed is None:
            raise PartitionNotCommittedError(
                f"--retry-failed needs a committed images/{partition} under {storage.root}; "
                "run without it first"
            )
        inputs = [
            r
            for t in (committed.index, committed.videos, committed.duplicates, committed.rejects)
            for r in t["row_key"].to_pylist()
        ]
        kept = _kept_outcomes(committed)
        rows, new_rejects = _rows_to_retry(feed, committed), []
    else:
        inputs = [r.row_key for r in (*feed.rows, *feed.rejects)]
        kept = ([], [], [], [])
        rows = feed.rows
        new_rejects = [
            reject_record(r.row_key, r.product_id, r.url, "feed", r.reason, r.detail, partition, now)
            for r in feed.rejects
        ]

    with Spool(config.workdir) as spool:
        requests = [FetchRequest(url, url) for url in dict.fromkeys(row.image_url for row in rows)]
        if retry_failed:
            log.info(
                "ingest images/%s: retrying %d failed row(s) of %s as %d distinct URL(s), %d outcome(s) "
                "kept from attempt %s",
                partition, len(rows), feed_uri, len(requests), sum(map(len, kept)),
                committed.manifest.attempt_id if committed else None,
            )  # fmt: skip
        else:
            log.info(
                "ingest images/%s: %s: %d row(s) to fetch as %d distinct URL(s), %d malformed",
                partition, feed_uri, len(rows), len(requests), len(new_rejects),
            )  # fmt: skip
        reporter = Progress(
            len(requests),
            f"ingest {partition}",
            PROGRESS_EVERY_S,
            log,
            callback=progress,
            level=logging.DEBUG if progress is not None else logging.INFO,
            unit="url",
        )
        with reporter, _cluster(client, config, bool(requests)) as dask:
            workers = worker_count(dask) if dask is not None else 0
            processed = fetch_and_process(
                requests,
                config.crawl,
                config.clean,
                spool,
                dask,
                config.batch_urls,
                reporter.update,
                quality=quality,
                video=config.video,
            )
        _log_fetch_trouble(partition, processed)
        by_url = {p.fetch.key: p for p in processed}
        phashes = [p.image.phash for p in processed if p.image is not None]
        own_index = committed.index if retry_failed and committed else None
        prior, prior_partition = load_prior(storage, partition, own_index, phashes, config.clean.phash_radius)
        video_rows = [row for row in rows if by_url[row.image_url].video is not None]
        accepted, duplicates, rejects = decide_outcomes(
            [row for row in rows if by_url[row.image_url].video is None],
            by_url, prior, prior_partition, partition, config, now,
        )  # fmt: skip
        videos, video_duplicates = [], []
        if video_rows:
            own_videos = committed.videos if retry_failed and committed else None
            prior_videos = load_prior_videos(storage, partition, own_videos)
            videos, video_duplicates = decide_video_outcomes(
                video_rows, by_url, prior_videos, partition, config, now
            )
        accepted, videos, duplicates, rejects = (
            rank_in_product(kept[0] + accepted),  # over every accepted image of the partition
            kept[3] + videos,
            kept[1] + duplicates + video_duplicates,
            kept[2] + new_rejects + rejects,
        )
        outcomes = (accepted, videos, duplicates, rejects)
        check_outcomes(inputs, *([r["row_key"] for r in group] for group in outcomes))
        counts = {
            "inputs": len(inputs),
            "accepted": len(accepted),
            "duplicates": len(duplicates),
            "rejected": len(rejects),
        }
        if videos:  # absent = 0, so a partition without videos keeps the counts it always had
            counts["accepted_videos"] = len(videos)
        # by content hash: one picture (one image_id) may come as a JPEG and as a PNG under two URLs
        spooled = {
            item.bytes_sha256: item.spool_at
            for p in processed
            for item in (p.image, p.video)
            if item is not None
        }

        def image_bytes(record: Mapping[str, Any]) -> bytes:
            at = spooled.get(record["bytes_sha256"])
            if at is not None:
                return spool.read(at)
            assert committed is not None  # only kept images are not in the spool
            return read_image(storage, committed.manifest, record)

        if committed is not None and not replace:
            _refuse_shrinking(committed, accepted, config.min_kept_share, feed_uri)
        run_info = {
            "feed": feed_uri,
            "retry_failed": retry_failed,
            "fetched": len(requests),
            "started_at": now.isoformat(),
            "quality_model": quality.source if quality is not None else None,
        }
        run_info["seconds_fetching"] = round(time.perf_counter() - started, 3)
        manifest = write_partition(
            storage,
            partition,
            accepted,
            image_bytes,
            rejects,
            duplicates,
            counts,
            shard_target_bytes=config.shard_target_bytes,
            run_id=run_id,
            extra={"run": run_info},
            workdir=config.workdir,
            based_on=committed,
            videos=videos,
        )
    dedup_index.record(storage, manifest)
    seconds = time.perf_counter() - started
    kinds = Counter(d["kind"] for d in duplicates)
    summary = IngestSummary(
        partition=partition,
        inputs=counts["inputs"],
        accepted=counts["accepted"],
        duplicates_exact=kinds.get("exact", 0),
        duplicates_near=kinds.get("near", 0),
        rejected=dict(sorted(Counter(r["reason"] for r in rejects).items())),
        fetched=len(requests),
        seconds=seconds,
        images_per_s=len(requests) / seconds if seconds > 0 else 0.0,
        manifest=manifest,
        unchanged=committed is not None and manifest.attempt_id == committed.manifest.attempt_id,
        retried=retry_failed,
        workers=workers,
        quality_model=quality.source if quality is not None else None,
        accepted_videos=len(videos),
    )
    _log_summary(summary)
    return summary


class PartitionShrinkError(CrispError):
    """The run would replace a committed partition with one that lost most of its accepted images."""


def _refuse_shrinking(
    committed: CommittedPartition, accepted: list[dict], min_share: float, feed: str
) -> None:
    """PartitionShrinkError when fewer than `min_share` of the committed accepted images are kept."""
    before = set(committed.index["image_id"].to_pylist())
    kept = len(before & {r["image_id"] for r in accepted})
    if before and kept < min_share * len(before):
        raise PartitionShrinkError(
            f"images/{committed.manifest.partition}: refusing to replace attempt {committed.manifest.attempt_id}: "
            f"this run from {feed} keeps {kept} of its {len(before)} accepted images ({kept / len(before):.0%}, "
            f"under ingest.min_kept_share={min_share:g}); the committed partition is unchanged. Check the feed, "
            "or pass --replace to replace it anyway"
        )


@contextmanager
def _cluster(client: Any, config: IngestConfig, needed: bool) -> Iterator[Any]:
    """The caller's client, else one to `config.scheduler_address` / a LocalCluster; None when not needed."""
    if client is not None or not needed:
        yield client
        return
    from pipeline.cluster import dask_client

    with dask_client(config.scheduler_address, config.workers) as started:
        yield started


def _log_fetch_trouble(partition: str, processed: list) -> None:
    """WARNING when URLs needed retries, or when nothing fetched could be used (a degraded crawl)."""
    retried = [p.fetch for p in processed if p.fetch.attempts > 1]
    if retried:
        failed = sum(1 for f in retried if not f.ok)
        example = next((f", e.g. {f.url}: {f.reason} {f.detail}" for f in retried if not f.ok), "")
        log.warning(
            "ingest images/%s: %d URL(s) needed retries (%d extra tries); %d still failed%s",
            partition, len(retried), sum(f.attempts - 1 for f in retried), failed, example,
        )  # fmt: skip
    if processed and not any(p.image is not None for p in processed):
        reasons = Counter(str(p.fetch.reason or (p.rejection and p.rejection.reason)) for p in processed)
        log.warning(
            "ingest images/%s: none of the %d fetched URL(s) gave a usable image: %s",
            partition, len(processed), dict(reasons.most_common(5)),
        )  # fmt: skip


def _log_summary(summary: IngestSummary) -> None:
    state = "unchanged" if summary.unchanged else "committed"
    reasons = f" {summary.rejected}" if summary.rejected else ""
    log.info(
        "ingest images/%s: %s attempt %s: %d input(s), %d accepted, %d video(s), %d duplicate(s) (exact %d, "
        "near %d), %d rejected%s; %d URL(s) fetched, %.1f s in all (%.1f URLs/s)",
        summary.partition, state, summary.manifest.attempt_id, summary.inputs, summary.accepted, summary.accepted_videos,
        summary.duplicates, summary.duplicates_exact, summary.duplicates_near, summary.rejected_total,
        reasons, summary.fetched, summary.seconds, summary.images_per_s,
    )  # fmt: skip


def _kept_outcomes(committed: CommittedPartition) -> tuple[list[dict], list[dict], list[dict], list[dict]]:
    """The committed outcomes a retry keeps: accepted images, duplicates, the non-retryable rejects and
    accepted videos."""
    rejects = [r for r in committed.rejects.to_pylist() if not is_retryable(r["reason"])]
    return (
        committed.index.to_pylist(),
        committed.duplicates.to_pylist(),
        rejects,
        committed.videos.to_pylist(),
    )


def _rows_to_retry(feed: Feed, committed: CommittedPartition) -> list[FeedRow]:
    """Feed rows of the committed retryable rejects (from the ledger where the feed lost the row)."""
    by_key = {row.row_key: row for row in feed.rows}
    rows = []
    for reject in committed.rejects.to_pylist():
        if is_retryable(reject["reason"]):
            row = by_key.get(reject["row_key"])
            rows.append(row or FeedRow(reject["row_key"], reject["product_id"], reject["url"]))
    return rows
