"""Videos: decide whether each fetched row whose body probed as a video is accepted or a duplicate of a video,
and build the video index records (a video that failed probing is a `Rejection`, ledgered with the images'
rejects by `outcomes.decide_outcomes`).

In: the feed rows whose body probed as a video, the `Processed` result of each distinct URL, the videos already
committed (`load_prior_videos`: the video index of every partition dated before this one, and on retry the
partition's own kept videos), the partition, the config and the time. Out: video index records (every
`VIDEO_INDEX_SCHEMA` column but the shard location), duplicate ledger records (the video's id in
`image_id`; `hamming_distance` is the largest pHash distance between corresponding sampled frames, 0 for
exact), as plain dicts matching the declared schemas.

Exact duplicates share a video_id (the same decoded frames: a remux, another URL); near duplicates pass
`pipeline.video.hashing.near_duplicate` (close durations, every sampled frame within
`video.phash_radius`). Committed videos always win; inside the partition the larger frame, then the
longer video, then the earlier row is kept. Only earlier dates count as prior (as for images).

Prior videos are read from each earlier partition's `videos.parquet` (three columns): fine for the few
videos a catalog carries per day; the images' persistent dedup index is what to extend when that grows.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow.parquet as pq

from pipeline.commit import committed_partitions, read_manifest, read_verified
from pipeline.ingest.config import IngestConfig
from pipeline.ingest.feed import FeedRow
from pipeline.ingest.outcomes import duplicate_record
from pipeline.ingest.process import Processed
from pipeline.ingest.read import DATASET, VIDEOS
from pipeline.ingest.split import assign_split
from pipeline.storage import Storage
from pipeline.video.hashing import keyframe_distance, near_duplicate
from schemas.image_index import phash_from_int64, phash_to_int64

PRIOR_COLUMNS = ("video_id", "keyframe_hashes", "duration_s")


@dataclass(frozen=True)
class KnownVideo:
    """A video a later one may duplicate: its id, sampled-frame pHashes, duration and partition."""

    video_id: str
    keyframe_hashes: tuple[int, ...]
    duration_s: float
    partition: str


def load_prior_videos(storage: Storage, partition: str, own_videos: Any | None = None) -> list[KnownVideo]:
    """Videos of every committed partition dated before `partition`, then (on retry) the partition's own
    kept ones (`own_videos`, its video index table)."""
    known = []
    for earlier in committed_partitions(storage, DATASET):
        if earlier >= partition:
            continue
        manifest = read_manifest(storage, DATASET, earlier)
        if any(f.name == VIDEOS for f in manifest.files):
            table = pq.read_table(
                io.BytesIO(read_verified(storage, manifest, VIDEOS)), columns=list(PRIOR_COLUMNS)
            )
            known += _known(table, earlier)
    if own_videos is not None:
        known += _known(own_videos.select(list(PRIOR_COLUMNS)), partition)
    return known


def decide_video_outcomes(
    rows: Sequence[FeedRow],
    by_url: dict[str, Processed],
    prior: Sequence[KnownVideo],
    partition: str,
    config: IngestConfig,
    now: datetime,
) -> tuple[list[dict], list[dict]]:
    """Accepted video index records and duplicate records of the rows whose body probed as a video."""
    order = {row.row_key: i for i, row in enumerate(rows)}

    def preference(row: FeedRow) -> tuple:
        probe = by_url[row.image_url].video.probe
        return (-probe.width * probe.height, -probe.frames, order[row.row_key])

    kept: list[KnownVideo] = list(prior)
    accepted, duplicates = [], []
    for row in sorted(rows, key=preference):
        p = by_url[row.image_url]
        probe = p.video.probe
        match = _match(probe, kept, config)
        if match is None:
            kept.append(KnownVideo(probe.video_id, probe.keyframe_hashes, probe.duration_s, partition))
            accepted.append(video_record(row, p, assign_split(row.product_id, config.split), partition, now))
            continue
        original, kind, distance = match
        of, size = (original.video_id, original.partition), (probe.width, probe.height)
        duplicates.append(duplicate_record(row, probe.video_id, of, kind, distance, size, partition, p))
    return accepted, duplicates


def video_record(row: FeedRow, p: Processed, split: str, partition: str, now: datetime) -> dict[str, Any]:
    """The video index record of an accepted row (all columns but the shard location)."""
    probe = p.video.probe
    return {
        "video_id": probe.video_id,
        "product_id": row.product_id,
        "url": row.image_url,
        "split": split,
        "container": probe.container,
        "codec": probe.codec,
        "width": probe.width,
        "height": probe.height,
        "fps": probe.fps,
        "duration_s": probe.duration_s,
        "frames": probe.frames,
        "audio_codec": probe.audio_codec,
        "keyframe_hashes": [phash_to_int64(h) for h in probe.keyframe_hashes],
        "bytes_sha256": probe.bytes_sha256,
        "partition": partition,
        "row_key": row.row_key,
        "category": row.category,
        "title": row.title,
        "extra": row.extra,
        "fetched_at": p.fetch.fetched_at,
        "ingested_at": now,
    }


def _match(probe, kept: Sequence[KnownVideo], config: IngestConfig) -> tuple[KnownVideo, str, int] | None:
    for known in kept:
        if known.video_id == probe.video_id:
            return known, "exact", 0
    video = config.video
    for known in kept:
        if near_duplicate(
            probe.keyframe_hashes, probe.duration_s, known.keyframe_hashes, known.duration_s,
            video.phash_radius, video.duration_tolerance,
        ):  # fmt: skip
            return known, "near", int(keyframe_distance(probe.keyframe_hashes, known.keyframe_hashes))
    return None


def _known(table, partition: str) -> list[KnownVideo]:
    return [
        KnownVideo(
            r["video_id"],
            tuple(phash_from_int64(h) for h in r["keyframe_hashes"]),
            r["duration_s"],
            partition,
        )
        for r in table.to_pylist()
    ]
