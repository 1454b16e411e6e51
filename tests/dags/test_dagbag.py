"""Every DAG file in dags/ imports cleanly and follows the house rules (tags, retries, doc_md)."""

from __future__ import annotations

import pytest

from tests.support.airflow import load_dagbag


@pytest.fixture(scope="module")
def dagbag():
    return load_dagbag()


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert "product_images_ingest" in dagbag.dag_ids


def test_every_dag_has_tags_retries_and_docs(dagbag):
    for dag_id in dagbag.dag_ids:
        dag = dagbag.dags[dag_id]
        assert dag.tags, f"{dag_id} has no tags"
        assert dag.default_args.get("retries", 0) >= 1, f"{dag_id} has no retries in default_args"
        assert dag.default_args.get("retry_delay"), f"{dag_id} has no retry_delay"
        assert dag.doc_md and len(dag.doc_md.strip()) > 40, f"{dag_id} has no doc_md"


def test_ingest_dag_shape(dagbag):
    dag = dagbag.dags["product_images_ingest"]
    assert dag.catchup is False and dag.max_active_runs == 1
    assert [t.task_id for t in dag.topological_sort()] == ["check_feed", "ingest", "publish"]
    assert "airflow backfill create --dag-id product_images_ingest" in dag.doc_md
    (outlet,) = dag.get_task("publish").outlets
    assert outlet.uri.rstrip("/") == "crisp://images"  # Airflow normalizes the URI with a trailing slash
