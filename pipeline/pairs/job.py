"""Build the pairs partitions of one recipe from committed image partitions, on a Dask cluster.

The stage serves every sample family (pipeline/pairs/families.py): the SR recipes' LR/HR pairs and the
quality model's distortion grid (`quality_grid`) share this planning, mapping and commit; a family brings
its per-shard function, schemas, count name and gate.

In: a `Storage`, a recipe name, image partition names (dates), a `PairsConfig`, optionally a connected
`distributed.Client` (else one from `cluster.dask_client`) and a progress callback `(done, total)`.
Out: a `PairsSummary` (per partition: pairs, skips by reason, shards, bytes, the committed manifest;
overall pairs/s and HR megapixels/s), and `pairs/<recipe>/<partition>/` committed for every partition.

Everything that can be wrong with the request fails before any task runs: an unknown recipe or a bad
parameter (ValueError), a partition that is not committed (PartitionNotCommittedError naming it).
Then one task per input shard runs `make_pairs_for_shard` on the workers, which read the image shard
and write the pair shards straight into this run's attempt folder (only root + options travel, never
pixels), costliest first (HR pixels from the image index: the last tasks are small, so workers finish
together). Tasks are retried on errors (`retries`) and rescheduled by Dask when a worker dies; a rerun of
a task rewrites the same objects with the same bytes. The driver sorts the gathered records by input
shard, writes index.parquet and skips.parquet, gates them with the GX suite and commits with a content
key (recipe, output config, source manifest digest): a partition already committed with the same key is
skipped without work, and an identical recomputation is a no-op commit.
"""

from __future__ import annotations

import io
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.commit import PartitionWriter, read_manifest, read_manifest_or_none, read_verified
from pipeline.pairs.config import PairsConfig
from pipeline.pairs.families import SampleFamily, family
from pipeline.pairs.make import InputShard, OutputFile, ShardOutput
from pipeline.progress import Progress
from pipeline.storage import Storage
from schemas.expectations import record_gate
from schemas.manifest import Manifest
from schemas.validate import records_to_table, schema_version

log = logging.getLogger(__name__)

IMAGES = "images"
IMAGE_INDEX = "index.parquet"
SHARD_COLUMNS = ("image_id", "product_id", "split", "shard", "offset", "size", "width", "height", "partition")
PROGRESS_EVERY_S = 30.0  # cadence of the "pairs <recipe>: done/total shards" line


@dataclass(frozen=True)
class PartitionResult:
    partition: str
    dataset: str
    manifest: Manifest
    reused: bool  # already committed with the same content key: no work was done
    pairs: int = 0
    images: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    shard_bytes: int = 0


@dataclass(frozen=True)
class PairsSummary:
    recipe: str
    partitions: list[PartitionResult]
    seconds: float  # wall time of the whole call
    hr_pixels: int
    worker_seconds: float = 0.0  # summed time inside make_pairs_for_shard (per-core throughput)

    @property
    def pairs(self) -> int:
        return sum(p.pairs for p in self.partitions)

    @property
    def skipped(self) -> dict[str, int]:
        total: Counter[str] = Counter()
        for p in self.partitions:
            total.update(p.skipped)
        return dict(sorted(total.items()))

    @property
    def pairs_per_second(self) -> float:
        return self.pairs / self.seconds if self.seconds > 0 else 0.0

    @property
    def megapixels_per_second(self) -> float:
        return self.hr_pixels / 1e6 / self.seconds if self.seconds > 0 else 0.0

    @property
    def pairs_per_worker_second(self) -> float:
        return self.pairs / self.worker_seconds if self.worker_seconds > 0 else 0.0

    @property
    def bytes_per_pair(self) -> float:
        total = sum(p.shard_bytes for p in self.partitions)
        return total / self.pairs if self.pairs else 0.0


@dataclass
class _Plan:
    partition: str
    source: Manifest
    content_key: dict[str, Any]
    shards: list[tuple[InputShard, list[dict[str, Any]]]]
    family: SampleFamily


def pairs_dataset(recipe: str) -> str:
    return f"pairs/{recipe}"


def build_pairs(
    storage: Storage,
    recipe: str,
    partitions: Sequence[str],
    config: PairsConfig,
    client: Any = None,
    progress: Callable[[int, int], None] | None = None,
    force: bool = False,
) -> PairsSummary:
    """Commit `pairs/<recipe>/<p>` for every p in `partitions`; `force` recomputes reused partitions.

    `progress(done, total)` is called as each input shard's task completes. The periodic "done/total,
    rate, ETA" line is logged at INFO, or at DEBUG when `progress` is given (the caller shows progress
    itself); the start, per-partition and summary lines are INFO either way."""
    started = time.perf_counter()
    # re-validate with this recipe: unknown names and tile/scale mismatches fail before any work
    config = PairsConfig.model_validate({**config.model_dump(), "recipes": [recipe]})
    names = sorted(set(partitions))
    if not names:
        raise ValueError("no image partitions given: pass at least one date (e.g. --from 2026-11-21)")
    plans = [_plan(storage, recipe, name, config) for name in names]
    results: list[PartitionResult] = []
    todo = []
    for plan in plans:
        current = read_manifest_or_none(storage, pairs_dataset(recipe), plan.partition)
        if current is not None and not force and current.extra.get("content_key") == plan.content_key:
            results.append(_reused(plan, current))
        else:
            todo.append(plan)
    log.info(
        "pairs %s: %d partition(s) to build (%s), %d input shard(s); %d already committed (%s)%s",
        recipe, len(todo), _names(p.partition for p in todo), sum(len(p.shards) for p in todo),
        len(results), _names(r.partition for r in results), ", forced" if force else "",
    )  # fmt: skip
    hr_pixels, worker_seconds = 0, 0.0
    if todo:
        if client is None:
            from pipeline.cluster import dask_client

            with dask_client(config.resolved_scheduler(), config.workers) as own_client:
                produced, hr_pixels, worker_seconds = _run(
                    storage, recipe, todo, config, own_client, progress
                )
        else:
            produced, hr_pixels, worker_seconds = _run(storage, recipe, todo, config, client, progress)
        results.extend(produced)
    results.sort(key=lambda r: r.partition)
    summary = PairsSummary(recipe, results, time.perf_counter() - started, hr_pixels, worker_seconds)
    built = [r for r in results if not r.reused]
    built_pairs = sum(r.pairs for r in built)
    log.info(
        "pairs %s: %d pair(s) in %d partition(s) (%d built, %d reused), skipped %s; %d pair(s) built in "
        "%.1f s (%.1f pairs/s, %.2f HR MP/s)",
        recipe, summary.pairs, len(results), len(built), len(results) - len(built), summary.skipped,
        built_pairs, summary.seconds, built_pairs / summary.seconds if summary.seconds > 0 else 0.0,
        summary.megapixels_per_second,
    )  # fmt: skip
    return summary


def read_input_shards(
    storage: Storage, partition: str
) -> tuple[Manifest, list[tuple[InputShard, list[dict]]]]:
    """The committed image partition's manifest and, per shard (sorted by name), its index rows."""
    source = read_manifest(storage, IMAGES, partition)  # PartitionNotCommittedError names it
    base = f"{IMAGES}/{partition}"
    index = pq.read_table(io.BytesIO(read_verified(storage, source, IMAGE_INDEX)))  # checksummed
    missing = [c for c in SHARD_COLUMNS if c not in index.column_names]
    if missing:
        raise ValueError(f"{storage.uri(base)}/{IMAGE_INDEX} lacks image index column(s) {missing}")
    rows_by_shard: dict[str, list[dict[str, Any]]] = {}
    for row in index.select(list(SHARD_COLUMNS)).to_pylist():
        rows_by_shard.setdefault(row["shard"], []).append(row)
    shards = []
    for name in sorted(rows_by_shard):
        entry = source.file(name)  # KeyError names the partition when the index points outside it
        shard = InputShard(partition, name, f"{base}/{entry.path}", entry.size, entry.sha256)
        shards.append((shard, rows_by_shard[name]))
    return source, shards


def _schema_versions(kind: SampleFamily) -> dict[str, int]:
    return {
        _schema_key(kind.index_schema): schema_version(kind.index_schema),
        "pair_skips": schema_version(kind.skip_schema),
    }


def _schema_key(schema: pa.Schema) -> str:
    return (schema.metadata or {}).get(b"crisp.schema", b"pair_index").decode()


def _plan(storage: Storage, recipe: str, partition: str, config: PairsConfig) -> _Plan:
    source, shards = read_input_shards(storage, partition)
    kind = family(recipe)
    key = {
        **kind.config_key(config),
        "source_digest": source.content_digest,
        "schemas": _schema_versions(kind),
    }
    return _Plan(partition, source, key, shards, kind)


def _reused(plan: _Plan, manifest: Manifest) -> PartitionResult:
    skipped = {k[len("skipped_") :]: v for k, v in manifest.counts.items() if k.startswith("skipped_")}
    return PartitionResult(
        partition=plan.partition,
        dataset=manifest.dataset,
        manifest=manifest,
        reused=True,
        pairs=manifest.counts.get(plan.family.count, 0),
        images=manifest.counts.get("images", 0),
        skipped=skipped,
        shard_bytes=sum(f.size for f in manifest.files_under("shards/")),
    )


def _run(storage, recipe, plans, config, client, progress) -> tuple[list[PartitionResult], int, float]:
    from distributed import as_completed

    writers = {p.partition: PartitionWriter(storage, pairs_dataset(recipe), p.partition) for p in plans}
    futures, owner = [], {}
    for plan in plans:
        writer = writers[plan.partition]
        out_dir = writer.attempt_path("")
        for shard, rows in plan.shards:
            stem = shard.name.replace("/", "-").removesuffix(".tar")
            future = client.submit(
                plan.family.make, storage.root, storage.options, shard, rows, recipe, config, out_dir,
                key=f"{plan.family.make.__name__}-{recipe}-{plan.partition}-{stem}-{writer.attempt_id}",
                retries=config.retries, pure=False, priority=_hr_pixels(rows),
            )  # fmt: skip
            futures.append(future)
            owner[future.key] = plan.partition
    outputs: dict[str, list[ShardOutput]] = {p.partition: [] for p in plans}
    results: list[PartitionResult] = []
    reporter = Progress(
        len(futures),
        f"pairs {recipe}",
        PROGRESS_EVERY_S,
        log,
        callback=progress,
        level=logging.DEBUG if progress is not None else logging.INFO,
        unit="shard",
    )
    try:
        with reporter:
            for future in as_completed(futures):
                output = future.result()
                outputs[owner[future.key]].append(output)
                log.debug(
                    "pairs %s: %s %s: %d pair(s), %d skip(s), %d image(s) in %.2f s",
                    recipe, owner[future.key], output.source.name, len(output.records), len(output.skips),
                    output.images, output.seconds,
                )  # fmt: skip
                reporter.advance()
        for plan in plans:
            result = _commit(writers[plan.partition], plan, outputs[plan.partition], config, recipe)
            results.append(result)
            log.info(
                "pairs %s: committed %s/%s attempt %s: %d pair(s) from %d image(s), %d skip(s), %.1f MB",
                recipe, result.dataset, result.partition, result.manifest.attempt_id, result.pairs,
                result.images, sum(result.skipped.values()), result.shard_bytes / 1e6,
            )  # fmt: skip
    except BaseException as exc:
        log.warning(
            "pairs %s: stopped by %s: %s; cancelling %d task(s), aborting the uncommitted attempt(s)",
            recipe, type(exc).__name__, exc, len(futures),
        )  # fmt: skip
        client.cancel(futures)
        committed = {r.partition for r in results}
        for name, writer in writers.items():
            if name not in committed:  # never delete the files of a manifest just published
                writer.abort()
        raise
    done_outputs = [o for outs in outputs.values() for o in outs]
    return results, sum(o.hr_pixels for o in done_outputs), sum(o.seconds for o in done_outputs)


def _names(names, shown: int = 5) -> str:
    """Partition names for a log line: the first few, then how many more."""
    names = list(names)
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return (", ".join(names[:shown]) or "-") + more


def _hr_pixels(rows: Sequence[dict[str, Any]]) -> int:
    """A shard's task cost: Dask starts the costliest first, so no worker idles behind a late big task."""
    return sum(int(row["width"]) * int(row["height"]) for row in rows)


def _adopt(writer: PartitionWriter, file: OutputFile) -> None:
    # a worker wrote this file into the writer's attempt folder; register it for the manifest
    writer.adopt(file.name, file.size, file.sha256)


def _parquet(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()


def _commit(writer, plan: _Plan, outputs: list[ShardOutput], config, recipe) -> PartitionResult:
    outputs = sorted(outputs, key=lambda o: o.source.name)  # completion order must not leak into bytes
    kind = plan.family
    records = [r for o in outputs for r in o.records]
    skips = [s for o in outputs for s in o.skips]
    index = records_to_table(records, kind.index_schema)
    skip_table = records_to_table(skips, kind.skip_schema)
    for output in outputs:
        for file in output.files:
            _adopt(writer, file)
    writer.write("index.parquet", _parquet(index))
    writer.write("skips.parquet", _parquet(skip_table))
    skipped = dict(sorted(Counter(s["reason"] for s in skips).items()))
    counts = {
        kind.count: len(records),
        "images": sum(o.images for o in outputs),
        "shards": sum(len(o.files) for o in outputs),
        "skipped": len(skips),
        **{f"skipped_{reason}": n for reason, n in skipped.items()},
    }
    manifest = writer.commit(
        counts=counts,
        schema_versions=_schema_versions(kind),
        extra={"content_key": plan.content_key, "source": {"dataset": IMAGES, "partition": plan.partition,
               "attempt_id": plan.source.attempt_id, "content_digest": plan.source.content_digest}},
        content_key=plan.content_key,
        gate=lambda _manifest: record_gate(
            lambda: kind.check(index, skip_table, plan.partition, config, len(records)), counts
        ),
    )  # fmt: skip
    return PartitionResult(
        partition=plan.partition,
        dataset=writer.dataset,
        manifest=manifest,
        reused=False,
        pairs=len(records),
        images=counts["images"],
        skipped=skipped,
        shard_bytes=sum(f.size for o in outputs for f in o.files),
    )
