"""Airflow helpers for DAG tests: a migrated metadata DB once per session, and `run_dag` over dag.test().

In: the test environment from tests/conftest.py (AIRFLOW_HOME in a temp dir, DAGS_FOLDER = <repo>/dags,
no examples, small parallelism). Out: the `airflow_db` session fixture (runs `airflow db migrate` once,
in a subprocess so the test process's Airflow import sees a ready SQLite DB), `load_dag_file(name)` (a DAG
file's module, for its functions), the training DAGs' `TRAINING_TASKS` and `SHARED_PARAMS`, and `run_dag(dag_id,
logical_date, conf)`, which loads the DAG from the repository's dags/ through a DagBag, runs it with
`dag.test()` and returns the DagRun, failing the test with each failed task's log when it did not succeed.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

DAGS_FOLDER = Path(__file__).resolve().parents[2] / "dags"


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """Migrate the SQLite metadata DB under AIRFLOW_HOME once per test session; returns AIRFLOW_HOME."""
    home = Path(os.environ["AIRFLOW_HOME"])
    done = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        pytest.fail(
            f"`airflow db migrate` failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return home


# Every training DAG of crisp/train_dag.py: its tasks in order, and the Params all of them have.
TRAINING_TASKS = ["check", "train", "validate", "register", "promote"]
SHARED_PARAMS = {"partitions", "max_steps", "devices", "overrides", "model_name", "gates"}


def load_dagbag():
    """A DagBag over the repository's dags/ folder."""
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS_FOLDER))


def load_dag_file(name: str):
    """The module of dags/<name>.py, executed afresh (after a test has set the settings' environment)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"{name}_dag", DAGS_FOLDER / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_dag(dag_id: str, logical_date: datetime, conf: dict[str, Any] | None = None, retries: int = 0):
    """Run `dag_id` for `logical_date` with dag.test(); the DagRun, or a test failure with the task logs.

    dag.test() honours task retries and their retry_delay (minutes), so a failing task would keep the test
    waiting: `retries` (default 0) replaces them on the loaded copy of the DAG, never in the DAG file.
    """
    bag = load_dagbag()
    if bag.import_errors:
        pytest.fail(f"DAG import errors: {bag.import_errors}")
    dag = bag.dags.get(dag_id)
    if dag is None:
        pytest.fail(f"no DAG {dag_id!r} in {DAGS_FOLDER} (found {sorted(bag.dag_ids)})")
    for task in dag.tasks:
        task.retries = retries
    run = dag.test(logical_date=logical_date, run_conf=conf)
    if str(run.state) != "success":
        pytest.fail(f"{dag_id} for {logical_date:%Y-%m-%d} ended {run.state}:\n{_task_logs(run)}")
    return run


def _task_logs(run) -> str:
    """State of every task instance, and the tail of the log files of those that did not succeed."""
    home = Path(os.environ["AIRFLOW_HOME"])
    parts = []
    for ti in sorted(run.get_task_instances(), key=lambda t: t.task_id):
        parts.append(f"--- {ti.task_id}: {ti.state}")
        if str(ti.state) == "success":
            continue
        logs = sorted(
            (home / "logs").glob(f"dag_id={run.dag_id}/run_id={run.run_id}/task_id={ti.task_id}/**/*.log")
        )
        for log in logs:
            parts.append(log.read_text(errors="replace")[-4000:])
    return "\n".join(parts)


def record_logs(monkeypatch) -> list[logging.LogRecord]:
    """Every record any stdlib logger handles from now on; the task runner swaps the root handlers
    (and so pytest's caplog handler) for its own, so the records are taken before any handler."""
    records, handle = [], logging.Logger.handle

    def recording(logger, record):
        records.append(record)
        return handle(logger, record)

    monkeypatch.setattr(logging.Logger, "handle", recording)
    return records
