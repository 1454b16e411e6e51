"""sr_pairs under dag.test(): commits pairs/<recipe>/<date> and emits crisp://pairs; scheduled on crisp://images."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from pipeline.commit import read_manifest, verify
from pipeline.storage import Storage
from tests.support.airflow import load_dagbag, record_logs, run_dag
from tests.support.image_partitions import write_image_partition

DAY = "2026-11-20"


@pytest.fixture
def root(tmp_path, shared_data, monkeypatch):
    """A root holding a committed images/<DAY>, wired in through CRISP_ROOT, and an in-process scheduler."""
    from distributed import LocalCluster

    storage = Storage(f"file://{tmp_path}/root")
    t91 = shared_data / "sr_train" / "T91"
    photos = [shared_data / "products" / "magento_luma" / "lt02.jpg", t91 / "t1.png", t91 / "t20.png"]
    write_image_partition(storage, DAY, photos, max_side=300)
    monkeypatch.setenv("CRISP_ROOT", storage.root)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", cluster.scheduler_address)
        yield storage


def test_dag_is_data_aware_on_the_images_asset():
    dag = load_dagbag().dags["sr_pairs"]
    condition = dag.timetable.asset_condition  # schedule=[asset] becomes AssetAll(asset)
    assert [a.uri.rstrip("/") for a in condition.objects] == ["crisp://images"]
    assert [t.task_id for t in dag.topological_sort()] == ["plan", "build"]
    assert [o.uri.rstrip("/") for o in dag.get_task("build").outlets] == ["crisp://pairs"]
    assert {"recipes", "partitions", "variants", "hr_tile", "force"} <= set(dag.params)


def test_partitions_come_from_the_triggering_events():
    from dags.sr_pairs import _event_partitions

    events = {"crisp://images": [SimpleNamespace(extra={"partition": "2026-11-21"}),
                                 SimpleNamespace(extra={"partition": "2026-11-20"}), SimpleNamespace(extra={})]}  # fmt: skip
    assert _event_partitions({"triggering_asset_events": events}) == ["2026-11-20", "2026-11-21"]
    assert _event_partitions({}) == []


def test_dag_test_commits_a_pairs_partition_and_emits_the_asset(airflow_db, root, monkeypatch):
    conf = {"partitions": [DAY], "recipes": ["bicubic_x2"], "hr_tile": 240}
    records = record_logs(monkeypatch)
    run_dag("sr_pairs", datetime(2026, 11, 20, tzinfo=UTC), conf=conf)
    task_log = [(r.name, r.getMessage()) for r in records]
    manifest = read_manifest(root, "pairs/bicubic_x2", DAY)
    verify(root, manifest, checksums=True)
    assert manifest.counts["pairs"] > 0 and manifest.counts["skipped_too_small"] == 1

    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session

    with create_session() as session:
        extras = [e.extra for e in session.query(AssetEvent).all() if e.asset.uri.startswith("crisp://pairs")]
    assert {"recipe": "bicubic_x2", "partitions": [DAY], "pairs": manifest.counts["pairs"],
            "content_digests": {DAY: manifest.content_digest}} in extras  # fmt: skip
    # the task log: the library's start and summary lines, the DAG's progress callback, its summary
    library = [m for name, m in task_log if name == "pipeline.pairs.job"]
    assert any(
        m.startswith(f"pairs bicubic_x2: 1 partition(s) to build ({DAY}), 1 input shard(s)") for m in library
    )
    dag_lines = [m for name, m in task_log if name.endswith("_sr_pairs")]  # the DAG module's logger
    assert [m.split(" in ")[0] for m in dag_lines if m.startswith("pairs bicubic_x2: ")] == [
        "pairs bicubic_x2: done 1/1 (100.0%)"
    ]
    assert any(
        m.startswith(f"pairs summary: {{'recipe': 'bicubic_x2', 'partitions': ['{DAY}']") for m in dag_lines
    )
    assert not [
        m for m in library if m.startswith("pairs bicubic_x2: done ")
    ]  # the callback has it, not twice
