"""`make stack` for real: Postgres, moto S3, Dask, MLflow and Airflow 3 (api-server, scheduler, dag-processor,
triggerer) on this machine; a 3-day `airflow backfill create` of product_images_ingest with feeds whose
images come from a loopback server; the scheduler `kill -9`ed mid-backfill and restarted; the days commit
whole, oldest first, deduplicated across days, and their asset events build the pairs."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from pipeline.commit import read_manifest, verify
from pipeline.ingest.read import read_partition
from pipeline.storage import Storage
from tests.support.catalog_feed import catalog_rows, write_feed
from tests.support.http_server import LoopbackHTTPServer

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("CRISP_SHARED_DATA", REPO.parent / "shared" / "data")).resolve()
TINY = ["optim.warmup_steps=0", "data.patch_size=16", "data.batch_size=4", "data.block_size=2", "data.workers=0",
        "trainer.val_check_interval=2", "trainer.enable_progress_bar=false"]  # fmt: skip
DAYS = ["2026-03-01", "2026-03-02", "2026-03-03"]


def load_stack_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("stack_script", REPO / "scripts" / "stack.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_one_wiring_file_with_environment_overrides_feeds_every_service(monkeypatch, tmp_path):
    stack_script = load_stack_module()
    monkeypatch.setenv("CRISP_STACK_AIRFLOW_PORT", "18080")
    wiring = stack_script.wiring()
    assert wiring["CRISP_STACK_AIRFLOW_PORT"] == "18080" and wiring["CRISP_STACK_BUCKET"] == "crisp"
    env = stack_script.service_env(wiring, tmp_path)
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:18080/execution/"
    assert env["AIRFLOW__API_AUTH__JWT_SECRET"] == wiring["AIRFLOW__API_AUTH__JWT_SECRET"]
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].endswith(f"/{wiring['CRISP_STACK_AIRFLOW_DB']}")
    assert env["CRISP_ROOT"] == "s3://crisp/prod" and not any(k.startswith("CRISP_STACK_") for k in env)
    names = [name for name, _, _ in stack_script.services(wiring, tmp_path)]
    assert names == ["s3", "dask-scheduler", "dask-worker-1", "dask-worker-2", "mlflow", "airflow-api-server",
                     "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"]  # fmt: skip
    mlflow = next(command for name, command, _ in stack_script.services(wiring, tmp_path) if name == "mlflow")
    assert mlflow[mlflow.index("--backend-store-uri") + 1].endswith(f"/{wiring['CRISP_STACK_MLFLOW_DB']}")
    assert stack_script.pg_data_dir(tmp_path) == stack_script.pg_data_dir(tmp_path)  # stable across runs


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def stack(tmp_path):
    """A whole stack on free ports with its state in tmp_path; stopped, state and database deleted after."""
    names = ["PG", "S3", "AIRFLOW", "MLFLOW", "DASK", "DASK_DASHBOARD"]
    env = {f"CRISP_STACK_{name}_PORT": str(free_port()) for name in names}
    env |= {
        "CRISP_STACK_DIR": str(tmp_path / "stack"),
        "CRISP_INGEST__CRAWL__ALLOW_HOSTS": '["127.0.0.1"]',  # the feeds' images are on loopback
        # a test deployment's gate policy: a 2-step model on tiny tiles must be able to pass (Set5 only)
        "CRISP_GATES__SR__PAIR_SPLIT": "null",
        "CRISP_GATES__SR__GOLDEN_OUTPUT_RANGE": "[-1.0, 2.0]",
        "CRISP_GATES__SR__MARGIN_DB": "-50",
        "CRISP_GATES__SR__BENCHMARKS": f"{{Set5: {SHARED / 'sr_benchmarks' / 'Set5'}}}",
        "OMP_NUM_THREADS": "1",
    }
    # a clean environment: the test session's own Airflow and Crisp settings must not reach the stack
    base = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "USER", "CRISP_SHARED_DATA")
    environ = {key: os.environ[key] for key in base if key in os.environ} | env
    script = [sys.executable, str(REPO / "scripts" / "stack.py")]

    def run(tool: str, *args: str) -> subprocess.CompletedProcess:
        """A tool of this venv (airflow, ...) with the stack's settings; its output on failure."""
        done = subprocess.run(
            [str(Path(sys.executable).parent / tool), *args],
            env=environ | settings,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, f"{tool} {' '.join(args)}: {done.stdout[-2000:]}{done.stderr[-3000:]}"
        return done

    up = subprocess.run([*script, "up"], env=environ, capture_output=True, text=True, timeout=600)
    assert up.returncode == 0, up.stdout + up.stderr
    settings = dict(
        line.split("=", 1) for line in (tmp_path / "stack" / "crisp.env").read_text().splitlines()
    )
    settings = {key: value.strip("'") for key, value in settings.items()}
    try:
        yield {"run": run, "script": script, "environ": environ, "settings": settings, "env": env, "up": up}
    finally:
        subprocess.run([*script, "down", "--purge"], env=environ, capture_output=True, timeout=300)


def api(stack, path: str, body: dict | None = None, method: str | None = None) -> dict:
    url = f"http://127.0.0.1:{stack['env']['CRISP_STACK_AIRFLOW_PORT']}/api/v2/{path}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read() or b"{}")


def runs_of(stack, dag_id: str) -> list[dict]:
    return api(stack, f"dags/{dag_id}/dagRuns?limit=100&order_by=logical_date")["dag_runs"]


def wait_for(what: str, condition, timeout_s: float, stack) -> object:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(3)
    logs = Path(stack["env"]["CRISP_STACK_DIR"], "logs")
    tails = {p.name: p.read_text(errors="replace")[-1500:] for p in sorted(logs.glob("airflow-*.log"))}
    pytest.fail(f"timed out waiting for {what}; logs: {json.dumps(tails, indent=1)[-6000:]}")


@pytest.mark.slow
def test_a_backfill_survives_a_killed_scheduler_and_commits_each_day_in_order(
    stack, product_photos, tmp_path
):
    settings = stack["settings"]
    assert "Airflow UI" in stack["up"].stdout and "MLflow UI" in stack["up"].stdout
    storage = Storage(
        settings["CRISP_ROOT"],
        {"key": settings["CRISP_S3__KEY"], "secret": settings["CRISP_S3__SECRET"],
         "client_kwargs": {"endpoint_url": settings["CRISP_S3__ENDPOINT_URL"]}},
    )  # fmt: skip
    rows = catalog_rows(product_photos)
    feeds = tmp_path / "feeds"
    by_day = {
        DAYS[0]: rows[0:5],
        DAYS[1]: [rows[0], *rows[5:8]],
        DAYS[2]: rows[8:11],
    }  # day 2 repeats a photo
    with LoopbackHTTPServer(product_photos) as server:
        for day, day_rows in by_day.items():
            write_feed(feeds / f"{day}.csv", day_rows, server.base_url)
        for day in ("2026-12-01", "2026-12-02"):  # whatever today's scheduled run asks for
            write_feed(feeds / f"{day}.csv", rows[20:22], server.base_url)
        stack["run"]("airflow", "variables", "set", "crisp_feed_template", f"file://{feeds}/{{date}}.csv")
        stack["run"](
            "airflow", "backfill", "create", "--dag-id", "product_images_ingest",
            "--from-date", DAYS[0], "--to-date", DAYS[-1], "--max-active-runs", "1", "--reprocess-behavior", "failed",
        )  # fmt: skip

        def backfill_runs() -> list[dict]:
            return [r for r in runs_of(stack, "product_images_ingest") if r["run_type"] == "backfill"]

        wait_for(
            "the first backfill day",
            lambda: any(r["state"] == "success" for r in backfill_runs()),
            420,
            stack,
        )
        pid_file = Path(stack["env"]["CRISP_STACK_DIR"], "pids", "airflow-scheduler.pid")
        os.kill(int(pid_file.read_text()), signal.SIGKILL)  # no shutdown: as if the node died
        time.sleep(2)
        restarted = subprocess.run(
            [*stack["script"], "up"], env=stack["environ"], capture_output=True, text=True
        )
        assert restarted.returncode == 0, restarted.stderr
        done = wait_for(
            "all 3 backfill days",
            lambda: (r := backfill_runs()) and len(r) == 3 and all(x["state"] == "success" for x in r) and r,
            600,
            stack,
        )
    assert [r["logical_date"][:10] for r in done] == DAYS
    manifests = [read_manifest(storage, "images", day) for day in DAYS]
    for manifest in manifests:
        verify(storage, manifest, checksums=True)  # every committed partition is whole
    assert [m.created_at for m in manifests] == sorted(m.created_at for m in manifests)  # oldest first
    second = read_partition(storage, DAYS[1])
    assert second.manifest.counts["accepted"] == 3
    assert second.duplicates.to_pylist()[0]["duplicate_of_partition"] == DAYS[0]  # deduplicated across days

    # each day's asset event reached sr_pairs, which built its pairs
    def pairs_built() -> bool:
        return all(storage.exists(f"pairs/bicubic_x4/{day}/_manifest.json") for day in DAYS)

    wait_for("pairs of every backfilled day", pairs_built, 600, stack)
    assert all(r["state"] in ("success", "running", "queued") for r in runs_of(stack, "sr_pairs"))

    # an ML engineer's retrain through the REST API, with params: the release flow promotes @champion
    set5 = SHARED / "sr_benchmarks" / "Set5"  # 11 products a day give no val split: validate on Set5
    overrides = [*TINY, f"data.benchmarks={{Set5: {set5}}}"]
    conf = {"partitions": DAYS, "max_steps": 2, "overrides": overrides, "model_name": "stack-sr"}
    run = api(stack, "dags/sr_train/dagRuns", {"logical_date": None, "conf": conf}, method="POST")
    finished = wait_for(
        "the sr_train run",
        lambda: (
            (r := api(stack, f"dags/sr_train/dagRuns/{run['dag_run_id']}"))["state"] in ("success", "failed")
            and r
        ),
        600,
        stack,
    )
    assert finished["state"] == "success", finished
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=settings["CRISP_MLFLOW_TRACKING_URI"])
    assert client.get_model_version_by_alias("stack-sr", "champion").version == "1"
