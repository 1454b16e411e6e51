"""Read a committed `images/<date>` partition: its manifest, index and ledgers, and single images.

In: a `Storage` and a partition name (YYYY-MM-DD). Out: `CommittedPartition` (manifest + the index, the
video index (`videos.parquet`; an empty table for a partition written before videos were ingested),
rejects and duplicates as Arrow tables, read only through files the manifest lists, each checked against
the sha256 the manifest records: `pipeline.commit.ChecksumMismatch` names a corrupted one), and
`read_image`, which returns one image's (or video's) stored bytes with a single range read of its shard
(the index row's shard, offset and size; a range of a shard cannot be checked against the whole file's sha256).
Readers never list attempt folders: a partition without a manifest does not exist.
`read_index_hashes` returns only what dedup needs (image_id, phash, color_signature); an index written
with schema v1 has no colour signatures, so that column comes back all null ("colour unknown").
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.commit import partition_dir, read_manifest, read_manifest_or_none, read_verified
from pipeline.shards import read_member
from pipeline.storage import Storage
from schemas.image_index import COLOR_SIGNATURE_TYPE
from schemas.manifest import Manifest
from schemas.video_index import VIDEO_INDEX_SCHEMA

DATASET = "images"
INDEX = "index.parquet"
VIDEOS = "videos.parquet"
REJECTS = "rejects.parquet"
DUPLICATES = "duplicates.parquet"
STATS = "stats.json"
HASH_COLUMNS = ("image_id", "phash", "color_signature")


@dataclass(frozen=True)
class CommittedPartition:
    manifest: Manifest
    index: pa.Table
    rejects: pa.Table
    duplicates: pa.Table
    videos: pa.Table


def file_path(manifest: Manifest, name: str) -> str:
    """Storage path (relative to the root) of the manifest's file with role name `name`."""
    return f"{partition_dir(manifest.dataset, manifest.partition)}/{manifest.file(name).path}"


def read_table(
    storage: Storage, manifest: Manifest, name: str, columns: Sequence[str] | None = None
) -> pa.Table:
    """One Parquet file of the partition (optionally only some columns), checked against its sha256."""
    data = read_verified(storage, manifest, name)
    return pq.read_table(io.BytesIO(data), columns=list(columns) if columns else None)


def read_index_hashes(storage: Storage, manifest: Manifest) -> pa.Table:
    """image_id, phash and color_signature of the partition's index (signatures null for a v1 index)."""
    data = read_verified(storage, manifest, INDEX)
    parquet = pq.ParquetFile(io.BytesIO(data))
    present = [name for name in HASH_COLUMNS if name in parquet.schema_arrow.names]
    table = parquet.read(columns=present)
    if "color_signature" not in present:
        table = table.append_column(
            pa.field("color_signature", COLOR_SIGNATURE_TYPE), pa.nulls(table.num_rows, COLOR_SIGNATURE_TYPE)
        )
    return table


def read_partition(storage: Storage, partition: str) -> CommittedPartition:
    """The committed partition; `PartitionNotCommittedError` when it has no manifest."""
    return _read(storage, read_manifest(storage, DATASET, partition))


def read_partition_or_none(storage: Storage, partition: str) -> CommittedPartition | None:
    manifest = read_manifest_or_none(storage, DATASET, partition)
    return None if manifest is None else _read(storage, manifest)


def _read(storage: Storage, manifest: Manifest) -> CommittedPartition:
    return CommittedPartition(
        manifest=manifest,
        index=read_table(storage, manifest, INDEX),
        rejects=read_table(storage, manifest, REJECTS),
        duplicates=read_table(storage, manifest, DUPLICATES),
        videos=read_videos(storage, manifest),
    )


def read_videos(storage: Storage, manifest: Manifest) -> pa.Table:
    """The partition's video index; empty when the partition has none (written before videos were)."""
    if not any(f.name == VIDEOS for f in manifest.files):
        return VIDEO_INDEX_SCHEMA.empty_table()
    return read_table(storage, manifest, VIDEOS)


def read_image(storage: Storage, manifest: Manifest, row: Mapping[str, Any]) -> bytes:
    """The stored bytes of the image in index `row` (needs shard, offset, size): one range read."""
    return read_member(storage, file_path(manifest, str(row["shard"])), int(row["offset"]), int(row["size"]))
