"""Dedup index: the committed images' hashes in a persistent, compacted index on the storage root, so that
dedup against the history reads band files and the matched records, not every earlier partition's index.

In: a `Storage` root. `record` adds a committed images partition (its image_id, phash and color_signature
columns) as a new segment and compacts; `sync` folds in committed partitions the index does not list
(committed before the index existed, or by a run killed between its commit and `record`), and with
`verify` also re-indexes partitions whose committed attempt changed; `prior_near` returns, in commit order,
the `PriorHashes` of the indexed images of partitions dated before a given one that lie within a Hamming
radius of some query pHash, and the partition of each. Out: the files of `schemas.dedup_index` under
`dedup/images/`.

Why the near images are enough: `resolve_duplicates` only compares a candidate with prior images within
the radius (exact duplicates have equal pHashes), so they give the same outcomes as the whole history.
A lookup reads 12 bytes per indexed image per band (3 bands, one at a time) plus the matched records.

Compaction is size-tiered: a segment's level is floor(log4(rows)); four segments of a level merge into
one, dropping the records of superseded attempts, so an image is rewritten about log4(images) times.
Replaced segments are deleted after a grace period, like attempts, because a concurrent reader may still
hold the old index manifest. That manifest is swapped by compare-and-swap, so two runs updating it at once
both land; a run killed between its commit and `record` is caught up by the next `sync`.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa

from pipeline.clean import PriorHashes
from pipeline.clean.hashing import pairs_within_radius, signature_rows
from pipeline.commit import new_attempt_id, read_manifest_or_none
from pipeline.ingest.read import DATASET as IMAGES
from pipeline.ingest.read import read_index_hashes
from pipeline.storage import Storage
from schemas.dedup_index import (
    BAND_ENTRY,
    BANDS,
    INDEX_NAME,
    MAX_RADIUS,
    RECORD,
    DedupIndexManifest,
    PartitionSpan,
    RetiredSegment,
    SegmentRef,
)
from schemas.manifest import Manifest

DATASET = "dedup/images"
LEVEL_BASE = 4  # four segments of one size level merge into one
GRACE = timedelta(hours=1)
SWAP_TRIES = 5  # manifest updates lost to concurrent runs before giving up
_CHUNK = 1 << 18  # rows per step when streaming records or computing band keys
_QUERY_CHUNK = 8192
_MERGE_GAP = 16  # matched records this close are read in one range
log = logging.getLogger(__name__)


def read_index(storage: Storage) -> DedupIndexManifest:
    """The index manifest; an empty index when none was written yet."""
    try:
        index = DedupIndexManifest.from_json(storage.read_bytes(f"{DATASET}/{INDEX_NAME}"))
    except FileNotFoundError:
        return DedupIndexManifest()
    if tuple(map(tuple, index.bands)) != BANDS:
        raise ValueError(
            f"{storage.uri(DATASET)} was built with pHash bands {index.bands}, this Crisp uses {list(BANDS)}: "
            f"delete {storage.uri(DATASET)} and the next ingest rebuilds it from the committed partitions"
        )
    return index


def record(storage: Storage, manifest: Manifest, now: datetime | None = None) -> None:
    """Index the committed images partition `manifest` (a no-op when the index holds that attempt)."""
    index = read_index(storage)
    if index.partitions.get(manifest.partition) != manifest.attempt_id:
        additions = [(manifest.partition, manifest.attempt_id, read_index_hashes(storage, manifest))]
        add(storage, index, additions, now or datetime.now(UTC))


def sync(storage: Storage, before: str | None = None, verify: bool = False) -> DedupIndexManifest:
    """Index committed partitions (dated before `before`, if given) that the index lacks, and with
    `verify` also those whose committed attempt is not the indexed one."""
    index = read_index(storage)
    additions = []
    for name in storage.list_dirs(IMAGES):
        if (before is not None and name >= before) or (name in index.partitions and not verify):
            continue
        manifest = read_manifest_or_none(storage, IMAGES, name)
        if manifest is not None and index.partitions.get(name) != manifest.attempt_id:
            additions.append((name, manifest.attempt_id, read_index_hashes(storage, manifest)))
    if not additions:
        return index
    log.info("dedup index: indexing %d committed partition(s) it did not hold", len(additions))
    return add(storage, index, additions, datetime.now(UTC))


def prior_near(
    storage: Storage, before: str, phashes: np.ndarray, radius: int, index: DedupIndexManifest | None = None
) -> tuple[PriorHashes, dict[str, str]]:
    """Indexed images of partitions dated before `before` within `radius` of a query, and their partitions."""
    index = index or read_index(storage)
    queries = np.asarray(phashes, dtype=np.uint64)
    found = []
    for segment in index.segments:
        spans = segment.spans
        live = np.array(
            [index.partitions.get(s.partition) == s.attempt_id and s.partition < before for s in spans]
        )
        if queries.size == 0 or not live.any():
            continue
        rows = _near_rows(storage, segment, queries, radius)
        records = _read_records(storage, segment, rows)
        found += [(spans[r["span"]].partition, r) for r in records[live[records["span"]]]]
    found.sort(key=lambda item: (item[0], int(item[1]["position"])))  # commit order: earliest wins ties
    ids = [r["image_id"].decode("ascii") for _, r in found]
    signatures = [r["color"].tobytes() if r["has_color"] else None for _, r in found]
    prior = PriorHashes.from_arrays(
        ids, np.array([r["phash"] for _, r in found], dtype=np.uint64), signatures
    )
    return prior, {image_id: partition for image_id, (partition, _) in zip(ids, found, strict=True)}


def add(
    storage: Storage,
    index: DedupIndexManifest,
    additions: list[tuple[str, str, pa.Table]],
    now: datetime,
) -> DedupIndexManifest:
    """Index `additions` (partition, attempt_id, its index hash columns) as one segment, compact, and write
    the manifest; `index` is the manifest read before (the bench builds a synthetic history with this).

    The manifest is swapped only over the one it was built from (`Storage.swap_bytes`): a writer that
    loses the race to another run re-reads it and adds its images again, so no run's partitions are
    dropped (its first segment is left unnamed and collected after the grace period)."""
    path = f"{DATASET}/{INDEX_NAME}"
    for _ in range(SWAP_TRIES):
        current = storage.read_bytes_or_none(path)
        if current is not None and DedupIndexManifest.from_json(current) != index:
            index = DedupIndexManifest.from_json(current)  # written since `index` was read
        updated, expired = _with(storage, index, additions, now)
        if storage.swap_bytes(path, updated.to_json(), current):
            _delete_segments(storage, updated, expired, now)
            return updated
        log.info("dedup index: another run updated the index meanwhile; adding again on top of it")
    raise RuntimeError(f"dedup index: {storage.uri(path)} changed under {SWAP_TRIES} tries in a row; rerun")


def _with(storage, index, additions, now: datetime) -> tuple[DedupIndexManifest, list[str]]:
    """`index` with one new segment of `additions`, compacted, and the retired segments now expired."""
    partitions = dict(index.partitions) | {name: attempt for name, attempt, _ in additions}
    chunks, spans, start = [], [], 0
    for name, attempt, hashes in sorted(additions, key=lambda a: a[0]):
        records = _records(hashes, len(spans))
        if len(records):
            chunks.append(records)
            spans.append(PartitionSpan(partition=name, attempt_id=attempt, start=start, rows=len(records)))
            start += len(records)
    segments = list(index.segments)
    if chunks:
        segments.append(_write_segment(storage, _chunks_file(chunks), spans, now))
    index = _compact(storage, index.model_copy(update={"partitions": partitions, "segments": segments}), now)
    expired = [r.segment_id for r in index.retired if r.retired_at <= now - GRACE]
    return index.model_copy(
        update={"retired": [r for r in index.retired if r.segment_id not in expired]}
    ), expired


def _records(hashes: pa.Table, span: int) -> np.ndarray:
    records = np.zeros(hashes.num_rows, dtype=RECORD)
    records["image_id"] = np.array([i.encode("ascii") for i in hashes["image_id"].to_pylist()], dtype="S64")
    records["phash"] = hashes["phash"].to_numpy(zero_copy_only=False).astype(np.int64).view(np.uint64)
    records["span"] = span
    records["position"] = np.arange(hashes.num_rows)
    records["color"], records["has_color"] = signature_rows(hashes["color_signature"].to_pylist())
    return records


def _chunks_file(chunks: Iterable[np.ndarray]) -> str:
    """A local temp file holding the record chunks one after another (streamed, never all in memory)."""
    handle, path = tempfile.mkstemp(prefix="crisp-dedup-")
    with os.fdopen(handle, "wb") as out:
        for chunk in chunks:
            out.write(chunk.tobytes())
    return path


def _write_segment(storage: Storage, records_path: str, spans: list[PartitionSpan], now) -> SegmentRef:
    """Publish a segment from a local records file (consumed): band files first, records, then the ref."""
    segment_id = new_attempt_id(now)
    records = np.memmap(records_path, dtype=RECORD, mode="r") if os.path.getsize(records_path) else []
    phashes = np.array(records["phash"]) if len(records) else np.zeros(0, np.uint64)
    del records
    for band, (shift, width) in enumerate(BANDS):
        order = np.argsort(_band_keys(phashes, shift, width), kind="stable")
        entries = np.empty(phashes.size, dtype=BAND_ENTRY)
        entries["phash"], entries["row"] = phashes[order], order
        storage.write_bytes(_path(segment_id, f"band{band}.bin"), entries.tobytes())
    storage.upload(records_path, _path(segment_id, "records.bin"), move=True)
    return SegmentRef(segment_id=segment_id, rows=int(phashes.size), spans=spans, created_at=now)


def _compact(storage: Storage, index: DedupIndexManifest, now: datetime) -> DedupIndexManifest:
    """Drop segments with no live span; merge four segments of one size level until none is left to merge."""
    segments, retired = [], list(index.retired)
    for segment in index.segments:
        live = any(index.partitions.get(s.partition) == s.attempt_id for s in segment.spans)
        (segments if live else retired).append(segment if live else _retire(segment, now))
    while True:
        levels: dict[int, list[SegmentRef]] = {}
        for segment in segments:
            levels.setdefault(int(math.log(max(segment.rows, 1), LEVEL_BASE)), []).append(segment)
        group = next((group for group in levels.values() if len(group) >= LEVEL_BASE), None)
        if group is None:
            return index.model_copy(update={"segments": segments, "retired": retired})
        merged = _merge(storage, index, group, now)
        segments = [s for s in segments if s not in group] + ([merged] if merged else [])
        retired += [_retire(s, now) for s in group]


def _merge(storage, index, group: list[SegmentRef], now) -> SegmentRef | None:
    """One segment holding the live spans of `group`, in partition order (streamed through a local file)."""
    live = [
        (segment, span)
        for segment in group
        for span in segment.spans
        if index.partitions.get(span.partition) == span.attempt_id
    ]
    live.sort(key=lambda item: item[1].partition)
    spans, start = [], 0

    def chunks():
        nonlocal start
        for segment, span in live:
            for first in range(span.start, span.start + span.rows, _CHUNK):
                count = min(_CHUNK, span.start + span.rows - first)
                data = storage.read_range(
                    _path(segment.segment_id, "records.bin"), first * RECORD.itemsize, count * RECORD.itemsize
                )
                chunk = np.frombuffer(data, dtype=RECORD).copy()
                chunk["span"] = len(spans)
                yield chunk
            spans.append(span.model_copy(update={"start": start}))
            start += span.rows

    path = _chunks_file(chunks())
    if not spans:
        os.remove(path)
        return None
    log.info("dedup index: merged %d segment(s) into one of %d image(s)", len(group), start)
    return _write_segment(storage, path, spans, now)


def _near_rows(storage: Storage, segment: SegmentRef, queries: np.ndarray, radius: int) -> np.ndarray:
    """Rows of `segment` whose pHash is within `radius` of a query (probing each band's sorted keys)."""
    if radius > MAX_RADIUS:  # the bands cannot guarantee a hit: compare with every indexed pHash
        entries = np.frombuffer(storage.read_bytes(_path(segment.segment_id, "band0.bin")), dtype=BAND_ENTRY)
        _, base_index, _ = pairs_within_radius(queries, np.ascontiguousarray(entries["phash"]), radius)
        return np.unique(entries["row"][base_index])
    rows = []
    for band, (shift, width) in enumerate(BANDS):
        entries = np.frombuffer(
            storage.read_bytes(_path(segment.segment_id, f"band{band}.bin")), dtype=BAND_ENTRY
        )
        keys = _band_keys(entries["phash"], shift, width)
        # 3 bands: within Hamming 2 some band is equal, within 5 some band is at most one bit off
        flips = np.array([0] + ([1 << bit for bit in range(width)] if radius > 2 else []), dtype=np.uint32)
        for first in range(0, queries.size, _QUERY_CHUNK):
            chunk = queries[first : first + _QUERY_CHUNK]
            probes = (_band_keys(chunk, shift, width)[:, None] ^ flips[None, :]).ravel()
            low = np.searchsorted(keys, probes, side="left")
            counts = np.searchsorted(keys, probes, side="right") - low
            total = int(counts.sum())
            if total == 0:
                continue
            query_index = np.repeat(np.repeat(np.arange(chunk.size), flips.size), counts)
            at = np.repeat(low, counts) + (np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts))
            close = np.bitwise_count(chunk[query_index] ^ entries["phash"][at]) <= radius
            rows.append(entries["row"][at[close]])
    return np.unique(np.concatenate(rows)) if rows else np.zeros(0, dtype=np.uint32)


def _read_records(storage: Storage, segment: SegmentRef, rows: np.ndarray) -> np.ndarray:
    """The records at `rows` (sorted, unique), reading runs of nearby rows as one range each."""
    if rows.size == 0:
        return np.zeros(0, dtype=RECORD)
    breaks = np.flatnonzero(np.diff(rows.astype(np.int64)) > _MERGE_GAP) + 1
    runs = [(int(run[0]), int(run[-1]) + 1) for run in np.split(rows, breaks)]
    size = RECORD.itemsize
    blocks = storage.read_ranges(
        _path(segment.segment_id, "records.bin"), [(a * size, (b - a) * size) for a, b in runs]
    )
    picked = [
        np.frombuffer(block, dtype=RECORD)[run_rows - a]
        for block, (a, _), run_rows in zip(blocks, runs, np.split(rows.astype(np.int64), breaks), strict=True)
    ]
    return np.concatenate(picked)


def _band_keys(phashes: np.ndarray, shift: int, width: int) -> np.ndarray:
    """uint32 band keys of uint64 pHashes, computed in chunks to bound the temporaries."""
    keys = np.empty(phashes.shape[0], dtype=np.uint32)
    mask = np.uint64((1 << width) - 1)
    for first in range(0, phashes.shape[0], _CHUNK):
        keys[first : first + _CHUNK] = (phashes[first : first + _CHUNK] >> np.uint64(shift)) & mask
    return keys


def _retire(segment: SegmentRef, now: datetime) -> RetiredSegment:
    return RetiredSegment(segment_id=segment.segment_id, retired_at=now)


def _delete_segments(storage: Storage, index: DedupIndexManifest, expired: list[str], now: datetime) -> None:
    """Delete the expired segments, and folders older than the grace period that the index does not name
    (left by a run killed mid-write or by a lost concurrent manifest update)."""
    named = {s.segment_id for s in index.segments} | {r.segment_id for r in index.retired}
    cutoff = new_attempt_id(now - GRACE)  # ids start with their UTC time, so they sort by age
    for folder in storage.list_dirs(f"{DATASET}/segments"):
        if folder in expired or (folder not in named and folder < cutoff):
            storage.delete(f"{DATASET}/segments/{folder}", recursive=True)


def _path(segment_id: str, name: str) -> str:
    return f"{DATASET}/segments/{segment_id}/{name}"
