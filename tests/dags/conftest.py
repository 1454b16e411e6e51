"""DAG tests share the session's migrated Airflow DB (tests/support/airflow.py)."""

from tests.support.airflow import airflow_db  # noqa: F401 (a fixture, used by name)
