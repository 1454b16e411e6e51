"""The persistent dedup index: lookups equal a brute-force scan, partitions and attempts are honoured,
compaction keeps the answers, and committed partitions are folded in (on a local root and on moto S3)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest

from pipeline.ingest import dedup_index
from pipeline.ingest.read import read_index_hashes
from schemas.image_index import phash_from_int64
from tests.support.image_partitions import write_image_partition

NOW = datetime(2026, 6, 1, tzinfo=UTC)
rng = np.random.default_rng(12)


def hashes_table(phashes, prefix: str, colors=None) -> pa.Table:
    """Index hash columns for synthetic images `<prefix>-<n>` (64-char ids, like real image ids)."""
    ids = [f"{prefix}-{n}".ljust(64, "0") for n in range(len(phashes))]
    colors = colors if colors is not None else [bytes([n % 256]) * 192 for n in range(len(phashes))]
    return pa.table(
        {
            "image_id": ids,
            "phash": np.asarray(phashes, dtype=np.uint64).view(np.int64),
            "color_signature": pa.array(colors, pa.binary(192)),
        }
    )


def flip(value: int, bits: int) -> int:
    for bit in rng.choice(64, bits, replace=False):
        value ^= 1 << int(bit)
    return value


def brute_force(history: dict[str, np.ndarray], before: str, queries: np.ndarray, radius: int) -> set[tuple]:
    found = set()
    for partition, phashes in history.items():
        if partition < before:
            distance = np.bitwise_count(queries[:, None] ^ phashes[None, :])
            for n in np.flatnonzero((distance <= radius).any(axis=0)):
                found.add((partition, int(phashes[n])))
    return found


def near(storage, before, queries, radius) -> set[tuple]:
    prior, owner = dedup_index.prior_near(storage, before, queries, radius)
    ids = [i.decode() for i in prior.image_ids]
    return {(owner[i], int(h)) for i, h in zip(ids, prior.phashes, strict=True)}


@pytest.mark.parametrize("radius", [0, 2, 4, 5, 7])
def test_lookup_equals_a_brute_force_scan_and_only_counts_earlier_partitions(local_storage, radius):
    history = {f"2026-05-{day:02d}": rng.integers(0, 2**63, 300, dtype=np.uint64) * 2 for day in range(1, 6)}
    index = dedup_index.read_index(local_storage)
    for day, phashes in history.items():
        index = dedup_index.add(local_storage, index, [(day, f"a-{day}", hashes_table(phashes, day))], NOW)
    base = list(history["2026-05-02"][:40]) + list(history["2026-05-04"][:40])
    queries = np.array([flip(int(h), int(rng.integers(0, 7))) for h in base], dtype=np.uint64)
    expected = brute_force(history, "2026-05-04", queries, radius)
    assert expected, "the planted neighbours must give the lookup something to find"
    assert near(local_storage, "2026-05-04", queries, radius) == expected
    assert all(partition < "2026-05-04" for partition, _ in expected)


def test_compaction_merges_segments_drops_superseded_attempts_and_keeps_answers(local_storage):
    history = {f"2026-05-{day:02d}": rng.integers(0, 2**64 - 1, 50, dtype=np.uint64) for day in range(1, 9)}
    index = dedup_index.read_index(local_storage)
    for day, phashes in history.items():
        index = dedup_index.add(local_storage, index, [(day, "first", hashes_table(phashes, day))], NOW)
    # 8 segments of 50 rows: two rounds of four merged, then those two are one level up, not merged
    assert [s.rows for s in index.segments] == [200, 200]
    assert len(index.retired) == 8
    queries = np.concatenate(list(history.values()))[::7]
    assert near(local_storage, "2026-06-01", queries, 4) == brute_force(history, "2026-06-01", queries, 4)

    # Re-commit 05-03 with other images: its first attempt's records no longer count, the new ones do.
    replaced = rng.integers(0, 2**64 - 1, 10, dtype=np.uint64)
    later = NOW + timedelta(hours=2)
    index = dedup_index.add(
        local_storage, index, [("2026-05-03", "second", hashes_table(replaced, "r"))], later
    )
    history["2026-05-03"] = replaced
    queries = np.concatenate([queries, replaced])
    assert near(local_storage, "2026-06-01", queries, 4) == brute_force(history, "2026-06-01", queries, 4)
    # the compaction-retired segments are past the grace period now: their folders are gone
    assert index.retired == [] and len(local_storage.list_dirs("dedup/images/segments")) == len(
        index.segments
    )


def test_colour_signatures_and_unknown_colours_come_back(local_storage):
    colors = [b"\x01" * 192, None]
    table = hashes_table([5, 6], "c", colors)
    index = dedup_index.add(local_storage, dedup_index.read_index(local_storage), [("d1", "a", table)], NOW)
    prior, owner = dedup_index.prior_near(local_storage, "d2", np.array([5, 6], dtype=np.uint64), 0, index)
    assert prior.has_color.tolist() == [True, False]
    assert prior.color_signatures[0].tobytes() == colors[0]
    assert set(owner.values()) == {"d1"}


def test_sync_folds_in_committed_partitions_and_record_is_idempotent(storage, product_photos):
    photos = sorted(product_photos.glob("*.jpg"))[:3]
    first = write_image_partition(storage, "2026-05-01", photos)
    write_image_partition(storage, "2026-05-02", photos[:1], max_side=400)  # a smaller copy: near
    index = dedup_index.sync(storage, before="2026-05-02")
    assert index.partitions == {"2026-05-01": first.attempt_id}  # only dates before the one asked for

    queries = [phash_from_int64(h) for h in read_index_hashes(storage, first)["phash"].to_pylist()]
    prior, owner = dedup_index.prior_near(storage, "2026-05-03", np.array(queries, dtype=np.uint64), 4)
    assert len(prior) == 3 and set(owner.values()) == {"2026-05-01"}  # 05-02 is not indexed yet

    index = dedup_index.sync(storage)
    assert sorted(index.partitions) == ["2026-05-01", "2026-05-02"]
    segments = index.segments
    dedup_index.record(storage, first)  # already indexed: nothing is written
    assert dedup_index.read_index(storage).segments == segments
    prior, owner = dedup_index.prior_near(storage, "2026-05-03", np.array(queries, dtype=np.uint64), 4)
    assert sorted(owner.values()) == ["2026-05-01"] * 3 + ["2026-05-02"]


def test_verify_reindexes_a_partition_whose_attempt_changed(local_storage, product_photos):
    photos = sorted(product_photos.glob("*.jpg"))[:2]
    write_image_partition(local_storage, "2026-05-01", photos)
    assert len(dedup_index.sync(local_storage).segments) == 1
    again = write_image_partition(local_storage, "2026-05-01", photos[:1])  # committed behind its back
    assert dedup_index.sync(local_storage).partitions["2026-05-01"] != again.attempt_id
    assert dedup_index.sync(local_storage, verify=True).partitions["2026-05-01"] == again.attempt_id


def test_an_index_built_with_other_bands_is_refused_with_the_fix(local_storage):
    dedup_index.add(local_storage, dedup_index.read_index(local_storage), [], NOW)
    path = "dedup/images/_index.json"
    local_storage.write_bytes(path, local_storage.read_bytes(path).replace(b"22", b"23", 1))
    with pytest.raises(ValueError, match="rebuilds it from the committed partitions"):
        dedup_index.read_index(local_storage)


def test_two_runs_adding_at_once_both_land(storage):
    """Both read the same manifest; the second to write finds it changed, re-reads it and adds again."""
    stale = dedup_index.read_index(storage)
    first = rng.integers(0, 2**64 - 1, 20, dtype=np.uint64)
    second = rng.integers(0, 2**64 - 1, 20, dtype=np.uint64)
    dedup_index.add(storage, stale, [("2026-05-01", "a", hashes_table(first, "one"))], NOW)
    index = dedup_index.add(storage, stale, [("2026-05-02", "b", hashes_table(second, "two"))], NOW)
    assert sorted(index.partitions) == ["2026-05-01", "2026-05-02"]
    assert dedup_index.read_index(storage) == index
    queries = np.concatenate([first, second])
    history = {"2026-05-01": first, "2026-05-02": second}
    assert near(storage, "2026-06-01", queries, 0) == brute_force(history, "2026-06-01", queries, 0)
