import os
import threading
from datetime import timedelta

import pytest

from pipeline.commit import (
    ManifestError,
    PartitionNotCommittedError,
    PartitionWriter,
    SupersededError,
    collect_garbage,
    committed_partitions,
    read_manifest,
    read_verified,
    verify,
)
from schemas.expectations import GateError, record_gate, suite_failures, suite_from_schema
from schemas.reasons import Reason
from schemas.rejects import REJECT_SCHEMA
from schemas.validate import records_to_table
from schemas.validation import Validation


def _commit(storage, payload: bytes, partition="2026-01-01", **kw):
    w = PartitionWriter(storage, "images", partition)
    w.write("index.parquet", payload)
    w.write("shards/000000.tar", payload * 2)
    return w.commit({"accepted": len(payload)}, {"image_index": 1}, **kw)


def read_all(storage, manifest):
    base = f"{manifest.dataset}/{manifest.partition}"
    return {f.name: storage.read_bytes(f"{base}/{f.path}") for f in manifest.files}


def test_uncommitted_partition_is_invisible(storage):
    w = PartitionWriter(storage, "images", "2026-01-01")
    w.write("index.parquet", b"data")
    with pytest.raises(PartitionNotCommittedError, match="images/2026-01-01 is not committed"):
        read_manifest(storage, "images", "2026-01-01")
    assert committed_partitions(storage, "images") == []


def test_commit_then_read(storage):
    m = _commit(storage, b"v1")
    assert read_manifest(storage, "images", "2026-01-01") == m
    verify(storage, m, checksums=True)
    assert read_all(storage, m) == {"index.parquet": b"v1", "shards/000000.tar": b"v1v1"}
    assert committed_partitions(storage, "images") == ["2026-01-01"]


def test_crash_before_manifest_leaves_previous_state(storage):
    first = _commit(storage, b"v1")
    w = PartitionWriter(storage, "images", "2026-01-01")
    w.write("index.parquet", b"v2-partial")
    # the process dies here: no commit() call
    assert read_manifest(storage, "images", "2026-01-01") == first
    verify(storage, first, checksums=True)
    assert read_all(storage, first)["index.parquet"] == b"v1"


def test_rerun_replaces_atomically_and_collects_old_attempt(storage):
    first = _commit(storage, b"v1")
    second = _commit(storage, b"v2", gc_grace=timedelta(0))
    assert second.attempt_id != first.attempt_id
    assert read_all(storage, read_manifest(storage, "images", "2026-01-01"))["index.parquet"] == b"v2"
    assert storage.list_dirs("images/2026-01-01/attempts") == [second.attempt_id]


def test_same_content_rerun_is_a_no_op(storage):
    first = _commit(storage, b"v1")
    again = _commit(storage, b"v1")
    assert again == first
    assert storage.list_dirs("images/2026-01-01/attempts") == [first.attempt_id]


def test_failed_gate_blocks_commit_and_keeps_previous(storage):
    first = _commit(storage, b"v1")

    def gate(manifest):
        raise ValueError("suite failed: accepted must be > 5")

    with pytest.raises(ValueError, match="suite failed"):
        _commit(storage, b"v2", gate=gate)
    assert read_manifest(storage, "images", "2026-01-01") == first
    assert storage.list_dirs("images/2026-01-01/attempts") == [first.attempt_id]


def test_checksum_and_size_mismatch_detected(storage):
    m = _commit(storage, b"v1")
    shard = f"images/2026-01-01/{m.file('shards/000000.tar').path}"
    storage.write_bytes(shard, b"X1X1")  # same size, different bytes
    verify(storage, m)  # sizes still match
    with pytest.raises(ManifestError, match="checksum"):
        verify(storage, m, checksums=True)
    storage.write_bytes(shard, b"short")
    with pytest.raises(ManifestError, match="has 5 bytes, the manifest says 4"):
        verify(storage, m)
    storage.delete(shard)
    with pytest.raises(ManifestError, match="missing"):
        verify(storage, m)


def test_concurrent_commits_never_mix(storage):
    results = {}

    def writer(tag: bytes):
        w = PartitionWriter(storage, "images", "2026-01-01")
        for i in range(4):
            w.write(f"shards/{i:06d}.tar", tag * (i + 1))
        results[tag] = w.commit({"n": 4}, {"image_index": 1})

    threads = [threading.Thread(target=writer, args=(t,)) for t in (b"A", b"B", b"C")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    final = read_manifest(storage, "images", "2026-01-01")
    verify(storage, final, checksums=True)
    contents = read_all(storage, final)
    tags = {v[:1] for v in contents.values()}
    assert len(tags) == 1, f"mixed partition: {tags}"
    assert {f.path.split("/")[1] for f in final.files} == {final.attempt_id}


def test_gc_spares_young_attempts(storage):
    first = _commit(storage, b"v1")
    inflight = PartitionWriter(storage, "images", "2026-01-01")
    inflight.write("index.parquet", b"in-flight")
    removed = collect_garbage(storage, "images", "2026-01-01", grace=timedelta(hours=1))
    assert removed == []
    assert set(storage.list_dirs("images/2026-01-01/attempts")) == {first.attempt_id, inflight.attempt_id}


def test_of_two_concurrent_commits_exactly_one_reports_success(storage):
    """Both writers started from the same (empty) partition: the second to commit is told it lost, its
    attempt is discarded, and the partition holds the winner."""
    first = PartitionWriter(storage, "images", "2026-01-01")
    second = PartitionWriter(storage, "images", "2026-01-01")
    for writer, payload in ((first, b"one"), (second, b"two")):
        writer.write("index.parquet", payload)
    won = first.commit({"accepted": 1}, {"image_index": 1}, based_on=None)
    with pytest.raises(SupersededError, match=f"superseded by attempt {won.attempt_id}"):
        second.commit({"accepted": 2}, {"image_index": 1}, based_on=None)
    assert read_manifest(storage, "images", "2026-01-01") == won
    assert storage.list_dirs("images/2026-01-01/attempts") == [won.attempt_id]
    assert storage.list("images/2026-01-01/history") == [f"images/2026-01-01/history/{won.attempt_id}.json"]


def test_racing_commits_from_threads_never_both_win(local_storage):
    for round_number in range(4):
        partition = f"2026-01-0{round_number + 1}"
        writers = [PartitionWriter(local_storage, "images", partition) for _ in range(2)]
        outcomes: list[object] = []

        def commit(writer, payload, outcomes=outcomes):
            writer.write("index.parquet", payload)
            try:
                outcomes.append(writer.commit({"accepted": len(payload)}, {"image_index": 1}, based_on=None))
            except SupersededError as exc:
                outcomes.append(exc)

        threads = [threading.Thread(target=commit, args=(w, b"x" * (n + 1))) for n, w in enumerate(writers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        winners = [o for o in outcomes if not isinstance(o, SupersededError)]
        assert len(winners) == 1 and read_manifest(local_storage, "images", partition) == winners[0]


def test_garbage_collection_removes_old_temp_files_of_interrupted_writes(local_storage):
    m = _commit(local_storage, b"v1")
    base = local_storage.uri("images/2026-01-01").removeprefix("file://")
    stale = [f"{base}/history/{m.attempt_id}.json.tmp-dead", f"{base}/_manifest.json.tmp-dead"]
    for path in stale:
        with open(path, "wb") as fh:
            fh.write(b"{")
    collect_garbage(local_storage, "images", "2026-01-01", grace=timedelta(hours=1))
    assert all(os.path.exists(p) for p in stale)  # young: may belong to a write in progress
    collect_garbage(local_storage, "images", "2026-01-01", grace=timedelta(0))
    assert not any(os.path.exists(p) for p in stale)
    assert read_manifest(local_storage, "images", "2026-01-01") == m


# -- quality evidence and quarantine ---------------------------------------------------------------


def ledger_gate(reasons: list[str]):
    """A gate as the pairs job builds one: a real GX suite on a tiny reject ledger, under record_gate."""
    from datetime import UTC, datetime

    rows = [
        {"row_key": f"f:{n}", "stage": "fetch", "reason": reason, "retryable": False, "partition": "d",
         "recorded_at": datetime(2026, 1, 1, tzinfo=UTC)}
        for n, reason in enumerate(reasons)
    ]  # fmt: skip
    frame = records_to_table(rows, REJECT_SCHEMA).to_pandas()
    reasons_known = {"reason": [r.value for r in Reason]}
    suite = suite_from_schema(REJECT_SCHEMA, "reject_ledger", value_sets=reasons_known)

    def check():
        failures = suite_failures("rejects", frame, suite)
        if failures:
            raise GateError(failures)

    return lambda _manifest: record_gate(check, {"rejected": len(rows)})


def test_gate_evidence_is_listed_checksummed_and_outside_the_digest(storage):
    m = _commit(storage, b"v1", gate=ledger_gate(["timeout"]))
    assert sorted(f.name for f in m.files) == ["index.parquet", "shards/000000.tar", "validation.json"]
    assert read_manifest(storage, "images", "2026-01-01") == m
    verify(storage, m, checksums=True)
    evidence = Validation.from_json(read_verified(storage, m, "validation.json"))
    assert (evidence.dataset, evidence.partition) == ("images", "2026-01-01")
    assert evidence.attempt_id == m.attempt_id
    assert evidence.success and evidence.failures == [] and evidence.counts == {"rejected": 1}
    assert [s.table for s in evidence.suites] == ["rejects"] and evidence.evaluated > 5
    assert evidence.gx_version and evidence.started_at <= evidence.finished_at
    # the same data without evidence has the same digest: the evidence is not content
    assert _commit(storage, b"v1", partition="2026-01-02").content_digest == m.content_digest
    again = _commit(storage, b"v1", gate=ledger_gate(["timeout"]))  # new timestamps, same content
    assert again == m and storage.list_dirs("images/2026-01-01/attempts") == [m.attempt_id]


def test_failed_gate_quarantines_the_attempt_with_its_results(storage):
    first = _commit(storage, b"v1")
    with pytest.raises(GateError) as failure:
        _commit(storage, b"v2", gate=ledger_gate(["timeout", "made_up"]))
    assert read_manifest(storage, "images", "2026-01-01") == first  # nothing committed
    assert storage.list_dirs("images/2026-01-01/attempts") == [first.attempt_id]
    (blocked,) = storage.list_dirs("images/2026-01-01/quarantine")
    where = f"images/2026-01-01/quarantine/{blocked}"
    assert storage.list(where, recursive=True) == [
        f"{where}/{name}" for name in ("index.parquet", "shards/000000.tar", "validation.json")
    ]
    assert storage.read_bytes(f"{where}/index.parquet") == b"v2"
    message = str(failure.value)
    assert "nothing was committed" in message and storage.uri(where) in message
    assert f"crisp data-docs --dataset images --date 2026-01-01 --attempt {blocked}" in message
    evidence = Validation.from_json(storage.read_bytes(f"{where}/validation.json"))
    assert not evidence.success and evidence.attempt_id == blocked
    assert evidence.failures == failure.value.failures and evidence.failed == 1
    (bad,) = [e for _, e in evidence.expectations() if not e.success]
    assert bad.type == "expect_column_values_to_be_in_set" and bad.column == "reason"
    assert bad.unexpected_count == 1 and bad.partial_unexpected_list == ["made_up"]


def test_garbage_collection_keeps_quarantined_attempts(local_storage):
    def gate(_manifest):
        raise GateError(["rejects: expect_something failed: observed 3"])  # a gate without record_gate

    with pytest.raises(GateError, match="quarantine"):
        _commit(local_storage, b"bad", gate=gate)
    (blocked,) = local_storage.list_dirs("images/2026-01-01/quarantine")
    later = _commit(local_storage, b"v2", gc_grace=timedelta(0))  # collects every unreferenced attempt
    assert collect_garbage(local_storage, "images", "2026-01-01", grace=timedelta(0)) == []
    assert local_storage.list_dirs("images/2026-01-01/attempts") == [later.attempt_id]
    assert local_storage.list_dirs("images/2026-01-01/quarantine") == [blocked]
    evidence = Validation.from_json(
        local_storage.read_bytes(f"images/2026-01-01/quarantine/{blocked}/validation.json")
    )
    assert evidence.failures == ["rejects: expect_something failed: observed 3"] and evidence.suites == []
