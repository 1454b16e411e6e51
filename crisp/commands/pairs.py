"""`crisp pairs`: build LR/HR tile pairs with quality labels from committed image partitions, on Dask.

In: --recipe NAME (repeatable), --from DATE [--to DATE] (every date in the range must be a committed
`images/<date>` partition), optional --root, --scheduler (else DASK_SCHEDULER_ADDRESS, else a
LocalCluster), --workers, --variants, --tile, --overlap, --force. Out: `pairs/<recipe>/<date>` committed
for every recipe and date, a progress bar over input shards on stderr, and a summary per recipe on stdout
(pairs, skipped by reason, pairs/s, HR MP/s, bytes per pair; `--json` prints it as JSON). Exit codes: 0
committed (or already committed with the same content), 2 bad arguments, recipe, configuration or a
missing partition (all found before any work), 1 the run failed (storage error, failed quality gate).
"""

from __future__ import annotations

import argparse
import sys
from datetime import date, timedelta


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "pairs",
        help="degrade, tile and label committed images into pairs/<recipe>/<date> (Dask)",
        description="Make seeded LR/HR tile pairs with quality labels from committed images/<date> partitions "
        "on a Dask cluster, and commit them as pairs/<recipe>/<date>.",
    )
    p.add_argument("--recipe", action="append", required=True, metavar="NAME", help="recipe (repeatable)")
    p.add_argument("--from", dest="date_from", required=True, metavar="DATE", help="first date, YYYY-MM-DD")
    p.add_argument("--to", dest="date_to", metavar="DATE", help="last date, YYYY-MM-DD (default: --from)")
    p.add_argument("--root", help="storage root URI (default: `root` from the settings / CRISP_ROOT)")
    p.add_argument(
        "--scheduler", metavar="ADDR", help="Dask scheduler, e.g. tcp://host:8786 (default: local)"
    )
    p.add_argument("--workers", type=int, help="LocalCluster worker processes (default: one per core)")
    p.add_argument("--variants", type=int, help="degraded variants per image (default 1)")
    p.add_argument("--tile", type=int, help="HR tile side in px (default 480)")
    p.add_argument("--overlap", type=int, help="HR px shared by neighbouring tiles (default 0)")
    p.add_argument(
        "--force", action="store_true", help="recompute partitions already committed with this config"
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument(
        "--no-progress", action="store_true", help="no progress bar (progress lines in the log instead)"
    )
    p.set_defaults(run=run)


def date_range(first: str, last: str | None) -> list[str]:
    """Every date from `first` to `last` inclusive, as YYYY-MM-DD; ValueError names a bad one."""
    try:
        start = date.fromisoformat(first)
        end = date.fromisoformat(last) if last else start
    except ValueError as exc:
        raise ValueError(f"--from/--to must be dates like 2026-11-21: {exc}") from None
    if end < start:
        raise ValueError(f"--to {end} is before --from {start}")
    return [(start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]


def run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from crisp.commands import settings_with_root
    from pipeline.pairs.config import PairsConfig

    try:
        partitions = date_range(args.date_from, args.date_to)
    except ValueError as exc:
        return _fail(str(exc), 2)
    settings = settings_with_root(args)
    base = settings.pairs
    overrides = {"recipes": args.recipe}
    for field, value in (("workers", args.workers), ("variants", args.variants), ("hr_tile", args.tile),
                         ("overlap", args.overlap), ("scheduler_address", args.scheduler)):  # fmt: skip
        if value is not None:
            overrides[field] = value
    if overrides.get("scheduler_address") is None and settings.dask_scheduler:
        overrides["scheduler_address"] = settings.dask_scheduler
    try:
        config = PairsConfig.model_validate({**base.model_dump(), **overrides})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'pairs'}: {e['msg']}" for e in exc.errors())
        return _fail(f"invalid pairs option: {problems}", 2)
    return _build(args, settings.storage(), config, partitions)


def _build(args: argparse.Namespace, storage, config, partitions: list[str]) -> int:
    import json

    from tqdm import tqdm

    from pipeline.cluster import dask_client
    from pipeline.commit import PartitionNotCommittedError, read_manifest
    from pipeline.pairs.job import IMAGES, build_pairs
    from pipeline.storage import StorageError
    from schemas.expectations import GateError

    try:
        for partition in partitions:  # every input must be committed before a cluster starts
            read_manifest(storage, IMAGES, partition)
    except PartitionNotCommittedError as exc:
        return _fail(str(exc), 2)
    summaries = []
    try:
        with dask_client(config.resolved_scheduler(), config.workers) as client:
            for recipe in config.recipes:
                bar = tqdm(desc=f"pairs {recipe}", unit="shard", disable=args.no_progress, file=sys.stderr)

                def progress(done: int, total: int, bar=bar) -> None:
                    bar.total = total
                    bar.update(done - bar.n)

                hook = None if args.no_progress else progress  # without a bar the log has the progress
                try:
                    summaries.append(
                        build_pairs(storage, recipe, partitions, config, client, hook, force=args.force)
                    )
                finally:
                    bar.close()
    except (ValueError, PartitionNotCommittedError) as exc:
        return _fail(str(exc), 2)
    except (GateError, StorageError) as exc:
        return _fail(str(exc), 1)
    if args.json:
        print(json.dumps([summary_dict(s) for s in summaries], indent=2))
    else:
        print("\n".join(format_summary(s, storage.uri(f"pairs/{s.recipe}")) for s in summaries))
    return 0


def summary_dict(summary) -> dict:
    return {
        "recipe": summary.recipe,
        "partitions": {
            p.partition: {
                "pairs": p.pairs,
                "images": p.images,
                "skipped": p.skipped,
                "reused": p.reused,
                "attempt_id": p.manifest.attempt_id,
                "content_digest": p.manifest.content_digest,
            }
            for p in summary.partitions
        },  # fmt: skip
        "pairs": summary.pairs,
        "skipped": summary.skipped,
        "seconds": round(summary.seconds, 3),
        "pairs_per_s": round(summary.pairs_per_second, 2),
        "hr_mp_per_s": round(summary.megapixels_per_second, 3),
        "pairs_per_worker_s": round(summary.pairs_per_worker_second, 2),
        "bytes_per_pair": round(summary.bytes_per_pair),
    }


def format_summary(summary, where: str) -> str:
    """The human summary of one recipe: partitions, pairs, skips by reason, throughput and size."""
    lines = [f"{where}: {len(summary.partitions)} partition(s)"]
    for p in summary.partitions:
        state = "unchanged (already committed with this config)" if p.reused else "committed"
        lines.append(f"  {p.partition}  {state}: {p.pairs} pairs from {p.images} images")
    skipped = sum(summary.skipped.values())
    lines.append(f"  pairs        {summary.pairs}")
    lines.append(f"  skipped      {skipped}")
    lines += [f"    {reason:<22}{count}" for reason, count in summary.skipped.items()]
    lines.append(
        f"  throughput   {summary.pairs_per_second:.1f} pairs/s, {summary.megapixels_per_second:.2f} HR MP/s "
        f"in {summary.seconds:.1f} s ({summary.pairs_per_worker_second:.1f} pairs/s per busy worker)"
    )
    lines.append(f"  size         {summary.bytes_per_pair / 1024:.1f} KiB per pair (HR + LR PNG)")
    return "\n".join(lines)


def _fail(message: str, code: int) -> int:
    print(f"crisp pairs: {message}", file=sys.stderr)
    return code
