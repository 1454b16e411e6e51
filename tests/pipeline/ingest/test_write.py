"""Write: shards, index, ledgers, stats committed behind the GX gate; deterministic; a failed gate blocks."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from pipeline.clean import COLOR_SIGNATURE_BYTES, CleanConfig
from pipeline.commit import read_manifest, read_manifest_or_none, read_verified, verify
from pipeline.crawl import FetchResult
from pipeline.ingest.feed import FeedRow
from pipeline.ingest.outcomes import index_record, reject_record
from pipeline.ingest.process import Processed, process_image
from pipeline.ingest.read import read_partition
from pipeline.ingest.write import row_order, write_partition
from pipeline.shards import iter_tar
from schemas.expectations import GateError
from schemas.validation import Validation
from tests.support import bad_images

DAY = "2026-02-01"
T0 = datetime(2026, 2, 1, 6, 0, tzinfo=UTC)


def accepted_image(seed: int, data: bytes, when: datetime) -> tuple[dict, bytes]:
    """An index record for a synthetic image, and its stored bytes."""
    image = process_image(data, CleanConfig())
    stored = image.stored_bytes if image.stored_bytes is not None else data
    row = FeedRow(
        f"feed.csv:{seed}", f"P{seed}", f"http://img.example.com/{seed}", "Cat", "Title", '{"k": 1}'
    )
    fetched = FetchResult(
        row.row_key, row.image_url, row.image_url, True, None, "png", None, "ok", 200, 1, 0.1, when
    )
    return index_record(row, Processed(fetched, image), "train", DAY, when), stored


@pytest.fixture(scope="module")
def outcomes():
    """Three accepted images (JPEG kept as is, PNG, CMYK re-encoded), one reject, one duplicate."""
    images = [accepted_image(1, bad_images.jpeg(1), T0), accepted_image(2, bad_images.png(2), T0)]
    images.append(accepted_image(3, bad_images.cmyk_jpeg(3), T0))
    first = images[0][0]
    reject = reject_record(
        "feed.csv:10",
        "P10",
        "http://img.example.com/10",
        "fetch",
        "http_client_error",
        "HTTP 404",
        DAY,
        T0,
        404,
        1,
    )
    duplicate = {
        "row_key": "feed.csv:4", "product_id": "P1", "url": "http://img.example.com/4",
        "image_id": first["image_id"], "duplicate_of": first["image_id"], "duplicate_of_partition": DAY,
        "kind": "exact", "hamming_distance": 0, "width": 320, "height": 320, "partition": DAY,
        "recorded_at": T0,
    }  # fmt: skip
    counts = {"inputs": 5, "accepted": 3, "duplicates": 1, "rejected": 1}
    return images, [reject], [duplicate], counts


def write(storage, images, rejects, duplicates, counts, **kwargs):
    stored = {record["image_id"]: data for record, data in images}
    return write_partition(
        storage,
        DAY,
        [r for r, _ in images],
        lambda r: stored[r["image_id"]],
        rejects,
        duplicates,
        counts,
        **kwargs,
    )


def test_commits_every_file_with_sorted_deterministic_content(local_storage, outcomes):
    images, rejects, duplicates, counts = outcomes
    manifest = write(local_storage, images, rejects, duplicates, counts)
    names = sorted(f.name for f in manifest.files)
    assert names == [
        "duplicates.parquet",
        "index.parquet",
        "rejects.parquet",
        "shards/000000.tar",
        "stats.json",
        "validation.json",
    ]
    assert manifest.counts == counts and manifest.schema_versions["image_index"] == 3
    verify(local_storage, manifest, checksums=True)  # the evidence is checksummed like every file
    evidence = Validation.from_json(read_verified(local_storage, manifest, "validation.json"))
    assert evidence.success and evidence.attempt_id == manifest.attempt_id and evidence.counts == counts
    tables = ["duplicates", "index", "rejects", "accounting", "outcomes"]
    assert [s.table for s in evidence.suites] == tables and evidence.accounting.success

    part = read_partition(local_storage, DAY)
    ids = part.index["image_id"].to_pylist()
    signatures = {r["image_id"]: r["color_signature"] for r, _ in images}
    assert part.index["color_signature"].to_pylist() == [signatures[i] for i in ids]
    assert all(len(s) == COLOR_SIGNATURE_BYTES for s in signatures.values())
    assert ids == sorted(ids) and part.index["format"].to_pylist().count("png") == 2
    shard = local_storage.read_bytes(f"images/{DAY}/{manifest.file('shards/000000.tar').path}")
    members = list(iter_tar(shard))
    assert [key for key, _ in members] == ids
    for (key, sample), row in zip(members, part.index.to_pylist(), strict=True):
        ext = "jpg" if row["format"] == "jpeg" else "png"
        assert set(sample) == {ext, "json"}
        meta = json.loads(sample["json"])
        assert meta["image_id"] == key and meta["split"] == "train" and meta["partition"] == DAY

    stats = json.loads(local_storage.read_bytes(f"images/{DAY}/{manifest.file('stats.json').path}"))
    assert stats["counts"] == counts and stats["rejected_by_reason"] == {"http_client_error": 1}
    assert stats["duplicates_by_kind"] == {"exact": 1} and stats["accepted_by_format"] == {
        "jpeg": 1,
        "png": 2,
    }
    assert stats["normalize_flags"].get("cmyk") == 1 and stats["shards"] == 1


def test_same_outcomes_later_is_a_no_op_keeping_the_committed_times(local_storage, outcomes):
    images, rejects, duplicates, counts = outcomes
    first = write(local_storage, images, rejects, duplicates, counts)
    later = T0 + timedelta(hours=5)
    again = [({**r, "fetched_at": later, "ingested_at": later}, d) for r, d in images]
    moved = [{**r, "recorded_at": later} for r in rejects]
    second = write(local_storage, again, moved, duplicates, counts, shard_target_bytes=1 << 30)
    assert second == first == read_manifest(local_storage, "images", DAY)
    read_verified(local_storage, first, "validation.json")  # the first run's evidence, intact
    assert set(read_partition(local_storage, DAY).index["ingested_at"].to_pylist()) == {T0}

    changed = [{**rejects[0], "reason": "timeout", "retryable": True, "recorded_at": later}]
    third = write(local_storage, images, changed, duplicates, counts)
    assert third.attempt_id != first.attempt_id
    assert read_partition(local_storage, DAY).rejects["recorded_at"].to_pylist() == [later]


def test_small_target_rolls_shards(storage, outcomes):
    images, rejects, duplicates, counts = outcomes
    manifest = write(storage, images, rejects, duplicates, counts, shard_target_bytes=1)
    assert [f.name for f in manifest.files_under("shards/")] == [f"shards/{i:06d}.tar" for i in range(3)]
    assert read_partition(storage, DAY).index["shard"].to_pylist() == [
        f"shards/{i:06d}.tar" for i in range(3)
    ]


def test_failing_gate_blocks_the_commit_quarantines_and_says_why(storage, outcomes):
    images, rejects, duplicates, counts = outcomes
    committed = write(storage, images, rejects, duplicates, counts)
    twice = [*images, images[0]]  # the same image_id twice in the index
    bad_counts = {**counts, "accepted": 4, "inputs": 7}
    with pytest.raises(GateError) as failure:
        write(storage, twice, rejects, duplicates, bad_counts)
    message = str(failure.value)
    assert "nothing was committed" in message
    assert "index: expect_column_values_to_be_unique(column='image_id')" in message
    assert "inputs == accepted + accepted_videos + duplicates + rejected" in message
    assert "outcomes: expect_column_values_to_be_unique(column='row_key')" in message
    assert read_manifest(storage, "images", DAY) == committed  # the old partition stays visible
    attempts = storage.list_dirs(f"images/{DAY}/attempts")
    assert attempts == [committed.attempt_id]  # the blocked attempt left attempts/ ...
    (blocked,) = storage.list_dirs(f"images/{DAY}/quarantine")  # ... for quarantine/, whole
    where = f"images/{DAY}/quarantine/{blocked}"
    assert storage.uri(where) in message
    kept = {name.removeprefix(f"{where}/") for name in storage.list(where, recursive=True)}
    assert kept == {"duplicates.parquet", "index.parquet", "rejects.parquet", "shards/000000.tar",
                    "stats.json", "validation.json"}  # fmt: skip
    evidence = Validation.from_json(storage.read_bytes(f"{where}/validation.json"))
    assert evidence.failures == failure.value.failures and not evidence.accounting.success
    assert evidence.counts == bad_counts and evidence.attempt_id == blocked


def test_gate_failure_on_a_new_partition_leaves_nothing_visible(local_storage, outcomes):
    images, rejects, duplicates, counts = outcomes
    with pytest.raises(GateError, match="expect_table_row_count_to_equal"):
        write(local_storage, images, rejects, duplicates, {**counts, "inputs": 6})
    assert read_manifest_or_none(local_storage, "images", DAY) is None


def test_row_order_is_numeric_within_a_feed():
    keys = ["b.csv:1", "a.csv:10", "a.csv:2", "a.csv:x"]
    assert sorted(keys, key=row_order) == ["a.csv:2", "a.csv:10", "a.csv:x", "b.csv:1"]
