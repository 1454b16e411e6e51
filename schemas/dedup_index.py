"""Dedup index: the records of the persistent, compacted index of committed images' hashes.

`dedup/images/_index.json` (one `DedupIndexManifest`, written last in one object write) lists the live
segments and, per images partition, the attempt whose images the index holds. A segment is a folder of
fixed-width binary files (`segments/<segment_id>/`):

- `records.bin`: one `RECORD` per image, in commit order (partition, then position in its index);
- `band<b>.bin`: one `BAND_ENTRY` per image, sorted by the image's band-b key of `BANDS`.

Fixed-width records let a lookup read whole band files (12 bytes an image) and then only the records of
the images it matched, by byte range, instead of every earlier partition's index.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

VERSION = 1
INDEX_NAME = "_index.json"
COLOR_BYTES = 192  # pipeline.clean.hashing.COLOR_SIGNATURE_BYTES (8 x 8 cells x L*a*b*)
# (shift, width) of the pHash bands: three bands with 1-bit probes find every pair within Hamming 5.
BANDS: tuple[tuple[int, int], ...] = ((0, 22), (22, 21), (43, 21))
MAX_RADIUS = 2 * len(BANDS) - 1
RECORD = np.dtype(
    [
        ("image_id", "S64"),  # pipeline.clean.hashing.image_id (ASCII hex)
        ("phash", "<u8"),
        ("span", "<u2"),  # index into SegmentRef.spans
        ("position", "<u4"),  # row in that partition's image index: commit order within the partition
        ("has_color", "?"),
        ("color", "u1", (COLOR_BYTES,)),
    ]
)
BAND_ENTRY = np.dtype([("phash", "<u8"), ("row", "<u4")])


class PartitionSpan(BaseModel):
    """The records of one partition's attempt inside a segment: rows [start, start + rows)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    partition: str
    attempt_id: str
    start: int
    rows: int


class SegmentRef(BaseModel):
    """One segment: its id, row count and its partitions' spans, in partition order."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    segment_id: str
    rows: int
    spans: list[PartitionSpan]
    created_at: datetime


class RetiredSegment(BaseModel):
    """A segment replaced by a compaction: deleted once older than the grace period (readers may hold it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    segment_id: str
    retired_at: datetime


class DedupIndexManifest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    index_version: int = VERSION
    bands: list[tuple[int, int]] = Field(default_factory=lambda: list(BANDS))
    partitions: dict[str, str] = Field(default_factory=dict)  # images partition -> attempt_id indexed
    segments: list[SegmentRef] = Field(default_factory=list)
    retired: list[RetiredSegment] = Field(default_factory=list)

    def to_json(self) -> bytes:
        return self.model_dump_json(indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes) -> DedupIndexManifest:
        return cls.model_validate_json(data)
