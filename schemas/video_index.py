"""Video index record: one row per accepted video of an `images/<date>` partition (`videos.parquet`).

A partition holds the day's media: its images in `index.parquet`, its videos here, both stored in the same
shards (a video is one member, "<video_id>.<container>", the bytes exactly as fetched: a video is never
re-encoded at ingest) and accounted for in the same reject and duplicate ledgers (a video's duplicate row
carries its video_id in `image_id`, the content id column).

Columns: video_id (`pipeline.video.hashing`: sha256 over the decoded frames, so one video remuxed or
served under two URLs gets one id), product_id, url, split (the product's split, as for its images),
shard / offset / size (one range read returns the stored bytes), the probe (container, codec, width,
height, fps, duration_s, frames, audio_codec: null without sound), keyframe_hashes (64-bit pHashes of
evenly spread frames as int64 bit patterns, what near-duplicate detection compares), bytes_sha256, the
feed lineage (row_key, category, title, extra JSON) and when it was fetched and first ingested.
"""

from __future__ import annotations

import pyarrow as pa

from schemas.image_index import TIMESTAMP
from schemas.validate import declare

VERSION = 1
CONTAINER_VALUES = ("mp4", "mov", "webm", "mkv", "avi")  # mirrors pipeline.crawl.sniff.VIDEO_FORMATS

VIDEO_INDEX_SCHEMA = declare(
    "video_index",
    VERSION,
    [
        pa.field("video_id", pa.string(), nullable=False),
        pa.field("product_id", pa.string(), nullable=False),
        pa.field("url", pa.string(), nullable=False),
        pa.field("split", pa.string(), nullable=False),
        pa.field("shard", pa.string(), nullable=False),
        pa.field("offset", pa.int64(), nullable=False),
        pa.field("size", pa.int64(), nullable=False),
        pa.field("container", pa.string(), nullable=False),
        pa.field("codec", pa.string(), nullable=False),
        pa.field("width", pa.int32(), nullable=False),
        pa.field("height", pa.int32(), nullable=False),
        pa.field("fps", pa.float64(), nullable=False),
        pa.field("duration_s", pa.float64(), nullable=False),
        pa.field("frames", pa.int32(), nullable=False),
        pa.field("audio_codec", pa.string()),
        pa.field("keyframe_hashes", pa.list_(pa.int64()), nullable=False),
        pa.field("bytes_sha256", pa.string(), nullable=False),
        pa.field("partition", pa.string(), nullable=False),
        pa.field("row_key", pa.string(), nullable=False),
        pa.field("category", pa.string()),
        pa.field("title", pa.string()),
        pa.field("extra", pa.string()),
        pa.field("fetched_at", TIMESTAMP, nullable=False),
        pa.field("ingested_at", TIMESTAMP, nullable=False),
    ],
)
