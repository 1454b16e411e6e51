"""`crisp ingest`: crawl and clean one catalog feed into the `images/<date>` partition, with a progress bar.

In: --feed URI, --date YYYY-MM-DD, optional --root (else the settings' root), --retry-failed, --replace,
--allow-host (repeatable; added to `ingest.crawl.allow_hosts`), --workers, --scheduler (a running Dask
scheduler; else `dask_scheduler` from the settings / DASK_SCHEDULER_ADDRESS, else a LocalCluster). The
learned quality model (`ingest.quality_model`, default the registered champion when there is one) is
looked up in the settings' MLflow store (`mlflow_tracking_uri`, else SQLite under the root). Out: a
committed partition and a summary on stdout (accepted / duplicates / rejected by reason / the quality
model that scored / throughput; `--json` prints it as JSON). Exit codes:
0 committed (or already committed with the same content), 2 bad arguments, feed or configuration (a
quality model that cannot be used included, before anything is fetched), 1 the
run failed (storage errors, a failed quality gate - the message lists the failed expectations -, a run
that would replace the committed partition with one keeping under `ingest.min_kept_share` of its images,
or a run superseded by another attempt committed meanwhile; the committed partition is kept either way).
"""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ingest",
        help="crawl, clean and dedup a catalog feed into images/<date>",
        description="Fetch every image URL of a catalog feed (CSV, TSV, JSONL or Parquet), clean, dedup and "
        "quality-score the images, and commit them as the images/<date> partition under the storage root.",
    )
    p.add_argument(
        "--feed", required=True, help="feed URI: file:///path/feed.csv, s3://bucket/feed.jsonl, or a path"
    )
    p.add_argument("--date", required=True, help="partition date, YYYY-MM-DD")
    p.add_argument("--root", help="storage root URI (default: `root` from the settings / CRISP_ROOT)")
    p.add_argument(
        "--retry-failed",
        action="store_true",
        help="re-fetch only the committed partition's rejects whose reason is retryable, and merge them",
    )
    p.add_argument(
        "--replace",
        action="store_true",
        help="replace the committed partition even when this run keeps under ingest.min_kept_share of it",
    )
    p.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="HOST",
        help="host, IP or CIDR allowed past the private-address guard (repeatable), e.g. 127.0.0.1",
    )
    p.add_argument(
        "--workers", type=int, help="LocalCluster workers (default: ingest.workers or the CPU count)"
    )
    p.add_argument(
        "--scheduler", metavar="ADDR", help="Dask scheduler to run on, e.g. tcp://host:8786 (default: local)"
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument(
        "--no-progress", action="store_true", help="no progress bar (progress lines in the log instead)"
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from crisp.commands import settings_with_root
    from pipeline.ingest.config import IngestConfig
    from pipeline.ingest.run import parse_partition

    try:
        partition = parse_partition(args.date)
    except ValueError as exc:
        return _fail(f"--date: {exc}", 2)
    settings = settings_with_root(args)
    overrides = settings.ingest.model_dump()
    overrides["crawl"]["allow_hosts"] = [*overrides["crawl"]["allow_hosts"], *args.allow_host]
    if args.workers is not None:
        overrides["workers"] = args.workers
    overrides["scheduler_address"] = (
        args.scheduler or overrides.get("scheduler_address") or settings.dask_scheduler
    )
    try:
        config = IngestConfig.model_validate(overrides)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return _fail(f"invalid ingest option: {problems}", 2)
    return _ingest(args, settings, config, partition)


def _ingest(args: argparse.Namespace, settings, config, partition: str) -> int:
    import json

    from tqdm import tqdm

    from pipeline.commit import PartitionNotCommittedError
    from pipeline.ingest.feed import FeedError
    from pipeline.ingest.run import PartitionShrinkError, SupersededError, ingest_partition
    from pipeline.quality import QualityModelError
    from pipeline.storage import StorageError
    from schemas.expectations import GateError

    bar = tqdm(desc=f"ingest {partition}", unit="img", disable=args.no_progress, file=sys.stderr)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    try:
        storage = settings.storage()
        summary = ingest_partition(
            args.feed,
            partition,
            storage,
            config,
            retry_failed=args.retry_failed,
            replace=args.replace,
            progress=None if args.no_progress else progress,  # without a bar the log has the progress
            tracking_uri=settings.mlflow_tracking_uri,  # where ingest.quality_model finds registered models
        )
    except (FeedError, PartitionNotCommittedError, QualityModelError) as exc:
        return _fail(str(exc), 2)
    except (GateError, StorageError, PartitionShrinkError, SupersededError) as exc:
        return _fail(str(exc), 1)
    finally:
        bar.close()
    if args.json:
        print(json.dumps(summary.to_dict(), indent=2))
    else:
        print(format_summary(summary, storage.uri(f"images/{partition}"), max(summary.workers, 1)))
    return 0


def format_summary(summary, where: str, workers: int) -> str:
    """The human summary: where it went, the outcome counts, rejects by reason and throughput."""
    state = "unchanged (same content already committed)" if summary.unchanged else "committed"
    lines = [
        f"{where}: {state}, attempt {summary.manifest.attempt_id}",
        f"  inputs       {summary.inputs}",
        f"  accepted     {summary.accepted}"
        + (f" (+ {summary.accepted_videos} videos)" if summary.accepted_videos else ""),
        f"  duplicates   {summary.duplicates} "
        f"(exact {summary.duplicates_exact}, near {summary.duplicates_near})",
        f"  rejected     {summary.rejected_total}",
    ]
    lines += [f"    {reason:<22}{count}" for reason, count in summary.rejected.items()]
    lines.append(f"  scored by    {summary.quality_model or 'no quality model (ingest.quality_model)'}")
    lines.append(
        f"  throughput   {summary.images_per_s:.1f} images/s "
        f"({summary.images_per_s / workers:.1f} per worker), "
        f"{summary.fetched} fetched in {summary.seconds:.1f} s"
    )
    return "\n".join(lines)


def _fail(message: str, code: int) -> int:
    print(f"crisp ingest: {message}", file=sys.stderr)
    return code
