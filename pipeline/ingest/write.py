"""Write: turn a partition's outcomes into shards, index, ledgers and stats, gate them, and commit.

In: index records of the accepted images (every `IMAGE_INDEX_SCHEMA` column except shard / offset /
size) and of the accepted videos (`VIDEO_INDEX_SCHEMA`, likewise), a function returning each one's stored
bytes, reject and duplicate records, the counts, and a `Storage`. Out: the committed `Manifest` of
`images/<partition>`.

Files of the attempt: `shards/NNNNNN.tar` (members "<image_id>.<jpg|png>" with the stored bytes and
"<image_id>.json" with the image's metadata, then "<video_id>.<container>" and "<video_id>.json" per
video), `index.parquet`, `videos.parquet` (only when the partition has videos, so a partition without
any is written exactly as before videos were ingested), `rejects.parquet`, `duplicates.parquet` and
`stats.json`, plus the gate's evidence `validation.json` (`schemas.validation`). A Great Expectations
gate built from the declared schemas must pass before the manifest is written; a failure moves the
attempt to `images/<partition>/quarantine/<attempt_id>/` with its evidence and raises `GateError` saying
why and where.

Output is deterministic, so that rerunning a date with the same outcomes is a no-op (the commit protocol
keeps the existing manifest when the content digest is unchanged): images are sharded in image_id order,
ledgers are sorted by row_key, stats hold no timings (those go to the manifest's `extra`), and a row whose
outcome equals the committed one keeps the committed timestamps (fetched_at, ingested_at, recorded_at).
"""

from __future__ import annotations

import hashlib
import io
import json
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.commit import UNCHECKED, PartitionWriter
from pipeline.ingest.read import (
    DATASET,
    DUPLICATES,
    INDEX,
    REJECTS,
    STATS,
    VIDEOS,
    CommittedPartition,
    read_partition_or_none,
)
from pipeline.shards import ShardWriter
from pipeline.storage import Storage
from schemas.duplicates import DUPLICATE_SCHEMA
from schemas.image_index import IMAGE_INDEX_SCHEMA, member_extension
from schemas.manifest import Manifest
from schemas.rejects import REJECT_SCHEMA
from schemas.validate import records_to_table, schema_version
from schemas.validation import Validation
from schemas.video_index import VIDEO_INDEX_SCHEMA

TIME_COLUMNS = ("fetched_at", "ingested_at", "recorded_at")
LOCATION_COLUMNS = ("shard", "offset", "size")
_METADATA_KEYS = ("image_id", "product_id", "url", "split", "width", "height", "format", "phash", "partition")
_VIDEO_METADATA_KEYS = (
    "video_id", "product_id", "url", "split", "container", "codec", "width", "height", "fps", "duration_s",
    "frames", "audio_codec", "partition",
)  # fmt: skip
_TABLES = (
    ("index", INDEX, IMAGE_INDEX_SCHEMA),
    ("videos", VIDEOS, VIDEO_INDEX_SCHEMA),
    ("rejects", REJECTS, REJECT_SCHEMA),
    ("duplicates", DUPLICATES, DUPLICATE_SCHEMA),
)


def row_order(row_key: str) -> tuple[str, int, str]:
    """Sort key for "<feed>:<row number>": by feed, then numerically by row."""
    feed, _, number = row_key.rpartition(":")
    return (feed, int(number), "") if number.isdigit() else (row_key, -1, row_key)


def write_partition(
    storage: Storage,
    partition: str,
    images: Sequence[Mapping[str, Any]],
    image_bytes: Callable[[Mapping[str, Any]], bytes],
    rejects: Sequence[Mapping[str, Any]],
    duplicates: Sequence[Mapping[str, Any]],
    counts: Mapping[str, int],
    shard_target_bytes: int = 256 * 2**20,
    run_id: str | None = None,
    extra: Mapping[str, Any] | None = None,
    suites: Mapping[str, Any] | None = None,
    workdir: str | None = None,
    based_on: CommittedPartition | None | object = UNCHECKED,
    videos: Sequence[Mapping[str, Any]] = (),
) -> Manifest:
    """Write and commit the partition (see the module docstring); returns the committed manifest.

    `based_on`: the committed partition the run started from (None: none was), which is then not read
    again; `PartitionWriter.commit` raises SupersededError if another attempt was committed since."""
    previous = read_partition_or_none(storage, partition) if based_on is UNCHECKED else based_on
    writer = PartitionWriter(storage, DATASET, partition, run_id)
    try:
        index_rows, video_rows = _shard_members(
            writer, images, videos, image_bytes, shard_target_bytes, workdir
        )
        ledgers = {
            "index": index_rows,
            "videos": video_rows,
            "rejects": sorted(rejects, key=lambda r: row_order(r["row_key"])),
            "duplicates": sorted(duplicates, key=lambda r: row_order(r["row_key"])),
        }
        written = [t for t in _TABLES if t[0] != "videos" or video_rows]
        tables = {}
        for name, file_name, schema in written:
            rows = ledgers[name]
            if previous is not None:
                rows = _keep_committed_times(rows, getattr(previous, name))
            tables[name] = records_to_table(rows, schema)
            writer.write(file_name, _parquet_bytes(tables[name]))
        writer.write(
            STATS, json.dumps(partition_stats(partition, tables, counts), indent=1, sort_keys=True).encode()
        )

        def gate(_manifest: Manifest) -> Validation:
            from schemas.expectations import ingest_suites, validate_or_raise

            frames = {name: table.to_pandas() for name, table in tables.items()}
            return validate_or_raise(frames, suites if suites is not None else ingest_suites(), counts)

        versions = {
            schema.metadata[b"crisp.schema"].decode(): schema_version(schema) for _, _, schema in written
        }
        return writer.commit(
            counts=dict(counts),
            schema_versions=versions,
            extra=dict(extra or {}),
            content_key={"schema_versions": versions},
            gate=gate,
            based_on=UNCHECKED if based_on is UNCHECKED else previous.manifest if previous else None,
        )
    except BaseException:
        writer.abort()
        raise


def _shard_members(
    writer: PartitionWriter,
    images: Sequence[Mapping[str, Any]],
    videos: Sequence[Mapping[str, Any]],
    stored_bytes: Callable[[Mapping[str, Any]], bytes],
    target_bytes: int,
    workdir: str | None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Images in image_id order, then videos in video_id order, into shards; their rows with locations."""
    kinds = (
        (images, "image_id", lambda r: member_extension(r["format"]), _METADATA_KEYS),
        (videos, "video_id", lambda r: r["container"], _VIDEO_METADATA_KEYS),
    )
    located: list[list[dict[str, Any]]] = []
    with ShardWriter(
        sink=lambda path, name: writer.upload(name, path, move=True),
        target_bytes=target_bytes,
        workdir=workdir,
    ) as shards:
        for records, id_column, extension, metadata_keys in kinds:
            rows = []
            for record in sorted(records, key=lambda r: r[id_column]):
                data = stored_bytes(record)
                if hashlib.sha256(data).hexdigest() != record["bytes_sha256"]:
                    raise RuntimeError(
                        f"{id_column} {record[id_column]}: stored bytes changed since cleaning "
                        "(spool or shard corrupt)"
                    )
                ext = extension(record)
                metadata = json.dumps({key: record[key] for key in metadata_keys}, sort_keys=True).encode()
                location = shards.add(record[id_column], {ext: data, "json": metadata})
                offset, size = location.members[ext]
                rows.append({**record, "shard": location.shard, "offset": offset, "size": size})
            located.append(rows)
    return located[0], located[1]


def _comparable(row: Mapping[str, Any]) -> dict[str, Any]:
    skip = (*TIME_COLUMNS, *LOCATION_COLUMNS)
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in row.items() if k not in skip}


def _keep_committed_times(rows: list[dict[str, Any]], committed: pa.Table) -> list[dict[str, Any]]:
    """Rows whose outcome equals the committed row (same row_key) take the committed timestamps."""
    by_key = {row["row_key"]: row for row in committed.to_pylist()}
    kept = []
    for row in rows:
        old = by_key.get(row["row_key"])
        if old is not None and _comparable(old) == _comparable(row):
            row = {**row, **{k: old[k] for k in TIME_COLUMNS if k in row and k in old}}
        kept.append(row)
    return kept


def _parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def partition_stats(
    partition: str, tables: Mapping[str, pa.Table], counts: Mapping[str, int]
) -> dict[str, Any]:
    """Deterministic run statistics (no timings): counts and breakdowns by reason, kind, split and flag."""
    index, rejects, duplicates = tables["index"], tables["rejects"], tables["duplicates"]
    videos = tables.get("videos")

    def tally(table: pa.Table, column: str) -> dict[str, int]:
        return dict(sorted(Counter(table.column(column).to_pylist()).items()))

    def tally_lists(table: pa.Table, column: str) -> dict[str, int]:
        return dict(sorted(Counter(f for flags in table.column(column).to_pylist() for f in flags).items()))

    return {
        "partition": partition,
        "counts": dict(sorted(counts.items())),
        "rejected_by_reason": tally(rejects, "reason"),
        "rejected_by_stage": tally(rejects, "stage"),
        "duplicates_by_kind": tally(duplicates, "kind"),
        "accepted_by_split": tally(index, "split"),
        "accepted_by_format": tally(index, "format"),
        "quality_flags": tally_lists(index, "quality_flags"),
        "normalize_flags": tally_lists(index, "normalize_flags"),
        "stored_bytes": int(sum(index.column("size").to_pylist())),
        "shards": len(set(index.column("shard").to_pylist())),
        # only with videos, so that a partition without any keeps the stats it had before videos were ingested
        **(
            {
                "videos_by_container": tally(videos, "container"),
                "video_stored_bytes": int(sum(videos.column("size").to_pylist())),
                "shards": len(
                    set(index.column("shard").to_pylist()) | set(videos.column("shard").to_pylist())
                ),
            }
            if videos is not None
            else {}
        ),
    }
