"""The video index schema and its gate: a conforming row passes, each broken rule is named, and the
outcome rule counts accepted videos (absent table and count = none)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from schemas.duplicates import DUPLICATE_SCHEMA
from schemas.expectations import GateError, ingest_suites, validate_or_raise
from schemas.image_index import IMAGE_INDEX_SCHEMA
from schemas.rejects import REJECT_SCHEMA
from schemas.validate import records_to_table
from schemas.video_index import CONTAINER_VALUES, VIDEO_INDEX_SCHEMA

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def video(**changes) -> dict:
    row = {
        "video_id": "a" * 64, "product_id": "P1", "url": "http://h/v.mp4", "split": "train",
        "shard": "shards/000000.tar", "offset": 512, "size": 9000, "container": "mp4", "codec": "h264",
        "width": 176, "height": 144, "fps": 29.97, "duration_s": 4.004, "frames": 120, "audio_codec": None,
        "keyframe_hashes": [1, -2, 3], "bytes_sha256": "b" * 64, "partition": "2026-01-01", "row_key": "f:1",
        "category": None, "title": None, "extra": None, "fetched_at": NOW, "ingested_at": NOW,
    }  # fmt: skip
    return {**row, **changes}


def frames(videos: list[dict] | None):
    tables = {
        "index": IMAGE_INDEX_SCHEMA.empty_table().to_pandas(),
        "rejects": REJECT_SCHEMA.empty_table().to_pandas(),
        "duplicates": DUPLICATE_SCHEMA.empty_table().to_pandas(),
    }
    if videos is not None:
        tables["videos"] = records_to_table(videos, VIDEO_INDEX_SCHEMA).to_pandas()
    return tables


@pytest.fixture(scope="module")
def suites():
    return ingest_suites()


def test_a_conforming_video_row_passes_and_counts_as_an_outcome(suites):
    counts = {"inputs": 1, "accepted": 0, "accepted_videos": 1, "duplicates": 0, "rejected": 0}
    assert validate_or_raise(frames([video()]), suites, counts).success
    with pytest.raises(GateError, match="accepted_videos"):
        validate_or_raise(frames([video()]), suites, {**counts, "accepted_videos": 0})
    # a partition written before videos: neither the table nor the count
    empty = {"inputs": 0, "accepted": 0, "duplicates": 0, "rejected": 0}
    assert validate_or_raise(frames(None), suites, empty).success


def test_broken_video_rows_are_named(suites):
    counts = {"inputs": 2, "accepted": 0, "accepted_videos": 2, "duplicates": 0, "rejected": 0}
    bad = [video(container="flv", frames=0), video(row_key="f:2")]  # a second row with the same video_id
    with pytest.raises(GateError) as caught:
        validate_or_raise(frames(bad), suites, counts)
    text = str(caught.value)
    assert "videos: expect_column_values_to_be_in_set(column='container'" in text
    assert "column='frames'" in text and "column='video_id'" in text
    assert "flv" not in CONTAINER_VALUES
