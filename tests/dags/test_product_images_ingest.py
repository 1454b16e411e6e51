"""product_images_ingest with dag.test(): one date commits its partition; a 3-day backfill dedups across days.

The feeds are the real product photos served from a loopback server, one feed per day from a date template;
consecutive days share photos, so a later day must record them as duplicates of the earlier day's images.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pipeline.commit import committed_partitions, read_manifest
from pipeline.ingest.read import read_partition
from pipeline.storage import Storage
from tests.support.airflow import record_logs, run_dag
from tests.support.catalog_feed import catalog_rows, write_feed
from tests.support.http_server import LoopbackHTTPServer

DAYS = ["2026-03-01", "2026-03-02", "2026-03-03"]
PER_DAY, STEP = 6, 3  # day d uses catalog rows [3d, 3d + 6): each day shares 3 photos with the day before


@pytest.fixture(scope="module")
def dag_runner(airflow_db, product_photos, tmp_path_factory):
    """Feeds for the three days on disk and a loopback server; yields run(dates, root) -> Storage."""
    tmp = tmp_path_factory.mktemp("ingest-dag")
    rows = catalog_rows(product_photos)
    with LoopbackHTTPServer(product_photos) as server, pytest.MonkeyPatch.context() as env:
        for day, date in enumerate(DAYS):
            write_feed(
                tmp / "feeds" / f"{date}.csv", rows[day * STEP : day * STEP + PER_DAY], server.base_url
            )
        env.setenv("CRISP_INGEST__CRAWL__ALLOW_HOSTS", '["127.0.0.1"]')
        env.setenv("CRISP_INGEST__WORKERS", "1")
        env.setenv("CRISP_FEED_TEMPLATE", f"file://{tmp}/feeds/{{date}}.csv")

        def run(dates: list[str], root: str) -> Storage:
            """Run the DAG for each date in order (what `airflow backfill create` queues)."""
            env.setenv("CRISP_ROOT", f"file://{tmp}/{root}")
            for date in dates:
                when = datetime.fromisoformat(date).replace(tzinfo=UTC)
                run_dag("product_images_ingest", when, conf={"feed_template": ""})
            return Storage(f"file://{tmp}/{root}")

        yield run, rows


def test_one_date_commits_the_partition_and_emits_the_asset(dag_runner, monkeypatch):
    run, rows = dag_runner
    records = record_logs(monkeypatch)
    storage = run(DAYS[:1], "one-day")
    first = read_partition(storage, DAYS[0])
    counts = first.manifest.counts
    assert counts["inputs"] == PER_DAY
    assert counts["inputs"] == counts["accepted"] + counts["duplicates"] + counts["rejected"]
    assert counts["accepted"] >= 1 and counts["rejected"] == 0
    assert first.manifest.run_id.startswith("airflow:product_images_ingest:")
    assert set(first.index["product_id"].to_pylist()) <= {r["sku"] for r in rows[:PER_DAY]}

    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session

    with create_session() as session:
        extras = [
            e.extra for e in session.query(AssetEvent).all() if e.asset.uri.startswith("crisp://images")
        ]
    assert {"partition": DAYS[0]} in [{"partition": x.get("partition")} for x in extras]

    # the task log: the DAG's feed line, progress callback and summary; the library's start / summary
    dag_lines = [r.getMessage() for r in records if r.name.endswith("_product_images_ingest")]
    assert any(
        m.startswith("feed file://") and f"{PER_DAY} rows to fetch, 0 malformed rows" in m for m in dag_lines
    )
    progress = [m for m in dag_lines if m.startswith(f"ingest {DAYS[0]}: ")]
    assert len(progress) == 1 and progress[0].startswith(f"ingest {DAYS[0]}: done {counts['inputs']}/")
    assert any(m.startswith(f"ingest summary: {{'partition': '{DAYS[0]}'") for m in dag_lines)
    library = [r.getMessage() for r in records if r.name == "pipeline.ingest.run"]
    assert any(m.startswith(f"ingest images/{DAYS[0]}: committed attempt ") for m in library)


def test_three_day_backfill_commits_three_partitions_and_dedups_across_days(dag_runner):
    run, rows = dag_runner
    storage = run(DAYS, "backfill")
    assert committed_partitions(storage, "images") == DAYS
    parts = {date: read_partition(storage, date) for date in DAYS}
    for day in (1, 2):
        today, yesterday = DAYS[day], DAYS[day - 1]
        counts = parts[today].manifest.counts
        assert counts["inputs"] == counts["accepted"] + counts["duplicates"] + counts["rejected"] == PER_DAY
        kept_yesterday = {
            r["url"].rsplit("/", 1)[1]: r["image_id"] for r in parts[yesterday].index.to_pylist()
        }
        duplicates = {r["url"].rsplit("/", 1)[1]: r for r in parts[today].duplicates.to_pylist()}
        for row in rows[day * STEP : day * STEP + STEP]:  # the photos yesterday's feed had too
            duplicate = duplicates[row["file"]]  # never accepted twice
            assert duplicate["duplicate_of_partition"] in DAYS[:day]
            if row["file"] in kept_yesterday:
                assert (duplicate["kind"], duplicate["duplicate_of"]) == (
                    "exact",
                    kept_yesterday[row["file"]],
                )
                assert duplicate["duplicate_of_partition"] == yesterday
        earlier_ids = {i for d in DAYS[:day] for i in parts[d].index["image_id"].to_pylist()}
        assert earlier_ids.isdisjoint(parts[today].index["image_id"].to_pylist())
    assert read_manifest(storage, "images", DAYS[2]).counts["duplicates"] >= STEP
