"""load_catalog: committed pair partitions in, one sorted table out; every bad input named before training."""

from __future__ import annotations

import hashlib

import pytest

from pipeline.commit import ChecksumMismatch, read_manifest
from pipeline.degrade.tiles import TileConfig
from pipeline.storage import Storage
from schemas.pairs import VERSION as PAIR_INDEX_VERSION
from tests.support.pairs_fixture import (  # noqa: F401
    TINY_PARTITION,
    copy_root,
    load_images,
    write_pair_partition,
)
from training.data.catalog import DataError, check_recipe_scale, load_catalog, manifest_hash


def test_reads_committed_partitions_on_file_and_s3(tiny_pairs, s3_storage):
    copy_root(tiny_pairs, s3_storage)
    for storage in (tiny_pairs, s3_storage):
        catalog = load_catalog(storage, "bicubic_x4", "all", scale=4)
        manifest = read_manifest(storage, "pairs/bicubic_x4", TINY_PARTITION)
        assert catalog.partitions == [TINY_PARTITION]
        assert catalog.rows.num_rows == manifest.counts["pairs"]
        assert catalog.split("train").num_rows + catalog.split("val").num_rows == catalog.rows.num_rows
        assert catalog.split("val").num_rows > 0
        keys = list(
            zip(catalog.rows["partition"].to_pylist(), catalog.rows["pair_id"].to_pylist(), strict=True)
        )
        assert keys == sorted(keys)
        paths = set(catalog.rows["shard_path"].to_pylist())
        assert paths == {
            f"pairs/bicubic_x4/{TINY_PARTITION}/{f.path}" for f in manifest.files_under("shards/")
        }
        expected = hashlib.sha256(manifest.content_digest.encode()).hexdigest()
        assert catalog.manifest_hash == manifest_hash([manifest]) == expected
        assert catalog.schema_version == PAIR_INDEX_VERSION


def test_manifest_hash_ignores_order_and_changes_with_content(tiny_pairs, tmp_path, shared_data):
    other = Storage(f"file://{tmp_path}/root")
    copy_root(tiny_pairs, other)
    write_pair_partition(
        other, load_images(shared_data / "sr_train" / "T91", limit=2), partition="2026-01-02"
    )
    both = load_catalog(other, "bicubic_x4", ["2026-01-02", TINY_PARTITION], scale=4)
    assert both.partitions == [TINY_PARTITION, "2026-01-02"]
    assert both.manifest_hash == manifest_hash(list(reversed(both.manifests)))
    assert both.manifest_hash != load_catalog(other, "bicubic_x4", [TINY_PARTITION], 4).manifest_hash


def test_bad_requests_fail_with_the_fix(tiny_pairs, tmp_path):
    with pytest.raises(DataError, match="makes x4 pairs but the model is x2"):
        load_catalog(tiny_pairs, "bicubic_x4", "all", scale=2)
    with pytest.raises(DataError, match="unknown recipe 'bicubic_x5'"):
        check_recipe_scale("bicubic_x5", 4)
    with pytest.raises(DataError, match="not committed.*committed ones: \\['2026-01-01'\\]"):
        load_catalog(tiny_pairs, "bicubic_x4", ["2026-02-30"], scale=4)
    with pytest.raises(DataError, match="no committed partitions under .*pairs/bicubic_x4: run `crisp pairs"):
        load_catalog(Storage(f"file://{tmp_path}/empty"), "bicubic_x4", "all", scale=4)
    with pytest.raises(DataError, match="data.partitions is empty"):
        load_catalog(tiny_pairs, "bicubic_x4", [], scale=4)


def test_rows_of_another_scale_are_refused(tmp_path, shared_data):
    """A partition whose index disagrees with its dataset's recipe (x2 pairs filed as x4) is refused."""
    storage = Storage(f"file://{tmp_path}/root")
    images = load_images(shared_data / "sr_train" / "T91", limit=1)
    write_pair_partition(
        storage, images, "bicubic_x2", "2026-01-01", TileConfig(hr_tile=96, overlap=0, min_hr_side=48)
    )
    for rel in storage.list("pairs/bicubic_x2", recursive=True):
        storage.write_bytes(rel.replace("bicubic_x2", "bicubic_x4", 1), storage.read_bytes(rel))
    with pytest.raises(DataError, match="holds pairs of recipe\\(s\\) \\['bicubic_x2'\\]"):
        load_catalog(storage, "bicubic_x4", "all", scale=4)


def test_a_corrupted_index_is_refused_with_its_digests(tiny_pairs, tmp_path, shared_data):
    """A byte flipped in one committed pair index: load_catalog names that partition, file and both
    digests; the other partition still loads."""
    storage = Storage(f"file://{tmp_path}/root")
    copy_root(tiny_pairs, storage)
    write_pair_partition(
        storage, load_images(shared_data / "sr_train" / "T91", limit=1), partition="2026-01-02"
    )
    manifest = read_manifest(storage, "pairs/bicubic_x4", TINY_PARTITION)
    rel = f"pairs/bicubic_x4/{TINY_PARTITION}/{manifest.file('index.parquet').path}"
    data = bytearray(storage.read_bytes(rel))
    data[len(data) // 2] ^= 0x01
    storage.write_bytes(rel, bytes(data))
    with pytest.raises(ChecksumMismatch) as raised:
        load_catalog(storage, "bicubic_x4", "all", scale=4)
    message = str(raised.value)
    assert f"partition pairs/bicubic_x4/{TINY_PARTITION}: index.parquet ({storage.uri(rel)})" in message
    assert manifest.file("index.parquet").sha256 in message
    assert hashlib.sha256(data).hexdigest() in message
    assert load_catalog(storage, "bicubic_x4", ["2026-01-02"], scale=4).rows.num_rows > 0
