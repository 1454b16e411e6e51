"""build_pairs on a real 2-process LocalCluster: commit, determinism, worker loss, bad requests, file + S3."""

from __future__ import annotations

import io
import logging
import os

import pyarrow.parquet as pq
import pytest
from distributed import SchedulerPlugin, WorkerPlugin

from pipeline.commit import PartitionNotCommittedError, read_manifest, verify
from pipeline.pairs import job as pairs_job
from pipeline.pairs.config import PairsConfig
from pipeline.pairs.job import build_pairs
from pipeline.shards import read_member
from schemas.pairs import PAIR_INDEX_SCHEMA
from schemas.reasons import Reason
from schemas.validate import conform

CONFIG = PairsConfig(recipes=["realworld_x4"], hr_tile=240, min_tile=96)


class KillWorkerOnce(WorkerPlugin):
    """Kills its worker process (os._exit, no cleanup) right after a pairs task finishes, once per marker.

    The task's pair shard is already in the attempt folder but the scheduler never hears of the result,
    so the task runs again elsewhere and rewrites the same object.
    """

    name = "kill-worker-once"

    def __init__(self, marker: str):
        self.marker = marker

    def transition(self, key, start, finish, **kwargs):
        if finish == "memory" and "make_pairs_for_shard" in str(key) and not os.path.exists(self.marker):
            with open(self.marker, "w") as fh:
                fh.write(str(os.getpid()))
            os._exit(1)


class RecordPriorities(SchedulerPlugin):
    """Records each pairs task's scheduler priority (smaller runs first) as it becomes ready."""

    name = "record-priorities"

    def start(self, scheduler):
        self.scheduler, self.seen = scheduler, {}

    def transition(self, key, start, finish, *args, **kwargs):
        if "make_pairs_for_shard" in str(key) and finish == "processing":
            self.seen[str(key)] = self.scheduler.tasks[key].priority


def read_index(storage, manifest):
    path = f"{manifest.dataset}/{manifest.partition}/{manifest.file('index.parquet').path}"
    return pq.read_table(io.BytesIO(storage.read_bytes(path)))


def test_commits_a_complete_partition_on_file_and_s3(storage, images_partition, dask_client2):
    partition = images_partition(storage)
    seen = []
    summary = build_pairs(storage, "realworld_x4", [partition], CONFIG, client=dask_client2,
                          progress=lambda done, total: seen.append((done, total)))  # fmt: skip
    manifest = read_manifest(storage, "pairs/realworld_x4", partition)
    verify(storage, manifest, checksums=True)
    result = summary.partitions[0]
    assert result.manifest == manifest and not result.reused
    assert seen[-1] == (2, 2) and [d for d, _ in seen] == [1, 2]  # one task per input shard
    assert summary.pairs == manifest.counts["pairs"] > 0
    assert (
        summary.skipped == {Reason.TOO_SMALL.value: 1} == {"too_small": manifest.counts["skipped_too_small"]}
    )
    assert summary.pairs_per_second > 0 and summary.megapixels_per_second > 0 and summary.bytes_per_pair > 0

    index = read_index(storage, manifest)
    conform(index, PAIR_INDEX_SCHEMA)
    shard_names = sorted(f.name for f in manifest.files_under("shards/"))
    assert shard_names == sorted(set(index.column("shard").to_pylist())) and set(shard_names) <= {
        "shards/000000.tar", "shards/000001.tar"}  # fmt: skip
    row = index.slice(index.num_rows - 1, 1).to_pylist()[0]
    base = f"pairs/realworld_x4/{partition}/{manifest.file(row['shard']).path}"
    assert read_member(storage, base, row["lr_offset"], row["lr_size"])[:8] == b"\x89PNG\r\n\x1a\n"

    again = build_pairs(storage, "realworld_x4", [partition], CONFIG, client=dask_client2)
    assert again.partitions[0].reused and again.partitions[0].manifest == manifest  # no work, no new attempt


def test_a_job_logs_its_plan_shard_progress_commits_and_summary(
    local_storage, images_partition, dask_client2, monkeypatch, caplog
):
    partition = images_partition(local_storage)
    monkeypatch.setattr(pairs_job, "PROGRESS_EVERY_S", 0.0)  # a line for every completed shard
    caplog.set_level(logging.INFO, logger="pipeline.pairs.job")
    summary = build_pairs(local_storage, "realworld_x4", [partition], CONFIG, client=dask_client2)
    lines = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "pipeline.pairs.job"]
    messages = [m for _, m in lines]
    assert (
        f"pairs realworld_x4: 1 partition(s) to build ({partition}), 2 input shard(s); 0 already "
        in messages[0]
    )
    progress = [m for m in messages if m.startswith("pairs realworld_x4: ") and "/2 (" in m]
    assert [m.split(" (")[0] for m in progress] == ["pairs realworld_x4: 1/2", "pairs realworld_x4: done 2/2"]
    assert "shard/s, ETA " in progress[0]  # no callback given: the progress lines are INFO
    attempt = summary.partitions[0].manifest.attempt_id
    assert any(
        f"committed pairs/realworld_x4/{partition} attempt {attempt}: {summary.pairs} pair(s)" in m
        for m in messages
    )
    assert messages[-1].startswith(
        f"pairs realworld_x4: {summary.pairs} pair(s) in 1 partition(s) (1 built, 0 reused)"
    )
    assert {level for level, _ in lines} == {"INFO"}

    caplog.clear()
    build_pairs(local_storage, "realworld_x4", [partition], CONFIG, client=dask_client2)
    assert f"0 partition(s) to build (-), 0 input shard(s); 1 already committed ({partition})" in caplog.text


def test_one_or_two_workers_and_reruns_give_identical_bytes(local_storage, images_partition, dask_client2):
    from distributed import Client, LocalCluster

    partition = images_partition(local_storage)
    first = build_pairs(local_storage, "realworld_x4", [partition], CONFIG, client=dask_client2).partitions[0]
    with (
        LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as one,
        Client(one) as single,
    ):
        second = build_pairs(local_storage, "realworld_x4", [partition], CONFIG, client=single, force=True)
    redo = second.partitions[0]
    # recomputed (not reused), and every file's sha256 and count equal: the commit was a no-op
    assert not redo.reused and redo.pairs == first.pairs
    assert redo.manifest.content_digest == first.manifest.content_digest
    assert redo.manifest.attempt_id == first.manifest.attempt_id
    assert local_storage.list_dirs(f"pairs/realworld_x4/{partition}/attempts") == [first.manifest.attempt_id]


def test_killing_a_worker_mid_job_still_commits_identical_output(tmp_path, images_partition, dask_client2):
    from pipeline.storage import Storage

    reference_root = Storage(f"file://{tmp_path}/reference")
    partition = images_partition(reference_root)
    reference = build_pairs(reference_root, "realworld_x4", [partition], CONFIG, client=dask_client2)

    storage = Storage(f"file://{tmp_path}/killed")
    images_partition(storage)
    marker = tmp_path / "killed-once"
    dask_client2.register_plugin(KillWorkerOnce(str(marker)))
    try:
        killed = build_pairs(storage, "realworld_x4", [partition], CONFIG, client=dask_client2)
    finally:
        dask_client2.unregister_worker_plugin(KillWorkerOnce.name)
    assert marker.exists(), "no worker was killed: the test did not exercise worker loss"
    manifest = read_manifest(storage, "pairs/realworld_x4", partition)
    verify(storage, manifest, checksums=True)
    assert killed.pairs == reference.pairs
    assert manifest.content_digest == reference.partitions[0].manifest.content_digest
    dask_client2.wait_for_workers(2, timeout=60)


def test_missing_or_uncommitted_partition_fails_before_any_work(local_storage, images_partition):
    images_partition(local_storage, "2026-11-19", commit=False)  # files written, manifest never published
    images_partition(local_storage, "2026-11-20")
    for partitions, name in (
        (["2026-11-20", "2026-11-19"], "images/2026-11-19"),
        (["2026-11-18"], "2026-11-18"),
    ):
        with pytest.raises(PartitionNotCommittedError, match=f"{name}.*not committed"):
            build_pairs(local_storage, "bicubic_x4", partitions, CONFIG)  # no client: it must fail first
    assert not local_storage.exists("pairs")


def test_unknown_recipe_or_bad_tile_fails_before_any_work(local_storage, images_partition):
    partition = images_partition(local_storage)
    with pytest.raises(ValueError, match="unknown recipe.*bicubic_x5"):
        build_pairs(local_storage, "bicubic_x5", [partition], CONFIG)
    with pytest.raises(ValueError, match="not a multiple of recipe bicubic_x3's scale 3"):
        build_pairs(local_storage, "bicubic_x3", [partition], PairsConfig(hr_tile=256))
    with pytest.raises(ValueError, match="no image partitions"):
        build_pairs(local_storage, "bicubic_x4", [], CONFIG)
    assert not local_storage.exists("pairs")


def test_costliest_shard_is_scheduled_first(local_storage, images_partition, dask_client2):
    partition = images_partition(local_storage)
    manifest = read_manifest(local_storage, "images", partition)
    images = pq.read_table(
        io.BytesIO(local_storage.read_bytes(f"images/{partition}/{manifest.file('index.parquet').path}"))
    )
    pixels: dict[str, int] = {}
    for row in images.to_pylist():
        stem = row["shard"].replace("/", "-").removesuffix(".tar")
        pixels[stem] = pixels.get(stem, 0) + row["width"] * row["height"]
    assert len(pixels) == 2 and len(set(pixels.values())) == 2
    dask_client2.register_plugin(RecordPriorities())
    try:
        build_pairs(local_storage, "realworld_x4", [partition], CONFIG, client=dask_client2, force=True)
        seen = dask_client2.run_on_scheduler(
            lambda dask_scheduler: dask_scheduler.plugins["record-priorities"].seen
        )
    finally:
        dask_client2.unregister_scheduler_plugin("record-priorities")
    assert len(seen) == 2
    for key, priority in seen.items():  # Dask runs the smallest tuple first; user priority leads it, negated
        stem = next(s for s in pixels if f"-{s}-" in key)
        assert priority[0] == -pixels[stem]
    order = sorted(seen, key=seen.get)
    assert f"-{max(pixels, key=pixels.get)}-" in order[0]
