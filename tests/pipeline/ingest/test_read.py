"""Read: a partition's tables via its manifest; one image = one range read; webdataset reads the shards;
the hash columns for dedup, also from a schema v1 index."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest

from pipeline.clean import CleanConfig
from pipeline.commit import ChecksumMismatch, ManifestError, PartitionNotCommittedError
from pipeline.crawl import FetchResult
from pipeline.ingest.feed import FeedRow
from pipeline.ingest.outcomes import index_record, load_prior
from pipeline.ingest.process import Processed, process_image
from pipeline.ingest.read import (
    INDEX,
    file_path,
    read_image,
    read_index_hashes,
    read_partition,
    read_partition_or_none,
)
from pipeline.ingest.write import write_partition
from schemas.image_index import phash_from_int64
from tests.support.image_partitions import write_image_partition

DAY = "2026-02-02"
NOW = datetime(2026, 2, 2, tzinfo=UTC)
PHOTOS = ["mh01-black_main.jpg", "luma-foam-roller.jpg", "lt01.jpg"]


def commit_photos(storage, product_photos, day: str = DAY) -> dict[str, bytes]:
    """Commit the real photos (stored as they came) as `day`; return image_id -> original file bytes."""
    records, originals = [], {}
    for n, name in enumerate(PHOTOS, start=1):
        data = (product_photos / name).read_bytes()
        image = process_image(data, CleanConfig())
        row = FeedRow(f"feed.csv:{n}", f"P{n}", f"http://img.example.com/{name}")
        fetched = FetchResult(
            row.row_key, row.image_url, row.image_url, True, None, "jpeg", None, "ok", 200, 1, 0.1, NOW
        )
        records.append(index_record(row, Processed(fetched, image), "train", day, NOW))
        originals[image.image_id] = data
    counts = {"inputs": 3, "accepted": 3, "duplicates": 0, "rejected": 0}
    write_partition(
        storage, day, records, lambda r: originals[r["image_id"]], [], [], counts, shard_target_bytes=100_000
    )
    return originals


def test_read_image_is_one_range_read_of_the_original_bytes(storage, product_photos, monkeypatch):
    originals = commit_photos(storage, product_photos)
    part = read_partition(storage, DAY)
    assert part.index.num_rows == 3 and part.rejects.num_rows == 0 and part.duplicates.num_rows == 0
    calls = []
    real_read_range = type(storage).read_range
    monkeypatch.setattr(
        type(storage), "read_range", lambda self, *args: calls.append(args) or real_read_range(self, *args)
    )
    for row in part.index.to_pylist():
        assert read_image(storage, part.manifest, row) == originals[row["image_id"]]
    assert len(calls) == 3  # one ranged read per image, nothing else
    assert {c[0] for c in calls} == {file_path(part.manifest, s) for s in part.index["shard"].to_pylist()}


def test_shards_read_with_the_webdataset_library(local_storage, product_photos):
    import webdataset as wds

    originals = commit_photos(local_storage, product_photos)
    part = read_partition(local_storage, DAY)
    urls = [
        local_storage.uri(file_path(part.manifest, f.name))[len("file://") :]
        for f in part.manifest.files_under("shards/")
    ]
    assert len(urls) >= 2  # a 100 kB target splits the three photos
    samples = list(wds.WebDataset(urls, shardshuffle=False).decode("rgb8"))
    assert [s["__key__"] for s in samples] == part.index["image_id"].to_pylist()
    for sample in wds.WebDataset(urls, shardshuffle=False):
        assert sample["jpg"] == originals[sample["__key__"]]
    decoded = samples[0]
    assert decoded["json"]["image_id"] == decoded["__key__"] and decoded["jpg"].shape[2] == 3


def test_uncommitted_partition_is_not_there(local_storage):
    assert read_partition_or_none(local_storage, "2026-02-03") is None
    with pytest.raises(PartitionNotCommittedError, match="images/2026-02-03 is not committed"):
        read_partition(local_storage, "2026-02-03")


def test_index_hashes_carry_colour_signatures_and_v1_ones_read_as_unknown(local_storage, product_photos):
    commit_photos(local_storage, product_photos)
    part = read_partition(local_storage, DAY)
    hashes = read_index_hashes(local_storage, part.manifest)
    assert hashes.column_names == ["image_id", "phash", "color_signature"]
    assert hashes.to_pylist() == part.index.select(hashes.column_names).to_pylist()
    assert all(len(s) == 192 for s in hashes["color_signature"].to_pylist())

    # An index written before schema v2 has no color_signature column: every colour is unknown.
    v1 = write_image_partition(local_storage, "2026-02-03", [product_photos / PHOTOS[0]])
    assert v1 is not None and v1.schema_versions["image_index"] == 1
    old = read_index_hashes(local_storage, v1)
    assert old.column_names == ["image_id", "phash", "color_signature"]
    assert old.num_rows == 1 and old["color_signature"].to_pylist() == [None]


def test_a_corrupted_index_is_named_and_the_untouched_partition_reads_fine(local_storage, product_photos):
    """One flipped byte in a committed index.parquet: every reader of it raises ChecksumMismatch naming
    the partition, the file and both digests; the partition next to it still reads."""
    earlier = "2026-02-01"
    commit_photos(local_storage, product_photos, day=earlier)
    commit_photos(local_storage, product_photos)
    manifest = read_partition(local_storage, DAY).manifest
    rel = file_path(manifest, INDEX)
    data = bytearray(local_storage.read_bytes(rel))
    data[len(data) // 2] ^= 0x01
    local_storage.write_bytes(rel, bytes(data))
    expected, actual = manifest.file(INDEX).sha256, hashlib.sha256(data).hexdigest()

    readers = {
        "read_partition": lambda: read_partition(local_storage, DAY),
        "read_partition_or_none": lambda: read_partition_or_none(local_storage, DAY),
        "read_index_hashes": lambda: read_index_hashes(local_storage, manifest),
        "load_prior": lambda: load_prior(local_storage, "2026-03-01", None, [], 4),  # indexes both days
    }
    for name, read in readers.items():
        with pytest.raises(ChecksumMismatch) as raised:
            read()
        message = str(raised.value)
        assert f"partition images/{DAY}: index.parquet" in message, name
        assert f"expected sha256 {expected}" in message and f"got {actual}" in message, name
        assert local_storage.uri(rel) in message, name
        assert isinstance(raised.value, ManifestError)  # what commit-protocol callers already catch

    untouched = read_partition(local_storage, earlier)
    assert untouched.index.num_rows == 3 and untouched.manifest.partition == earlier
    hashes = read_index_hashes(local_storage, untouched.manifest)["phash"].to_pylist()
    prior, owner = load_prior(local_storage, DAY, None, [phash_from_int64(h) for h in hashes], 4)
    assert set(owner.values()) == {earlier}  # only the earlier day: it reads fine
