"""`make stack` / `make stack-down`: a production-shaped Crisp stack on this machine, without containers.

In: `up`, `down` or `status`; the wiring of infra/stack.env (names, credentials, ports, bucket; any of its
variables set in the environment wins, e.g. other ports), and CRISP_STACK_DIR (state: logs, pid files,
Airflow home; default `.stack/` in the repo). Out: running services, one status line each with its URL:
- PostgreSQL from the OS packages: a project-owned cluster (initdb) with one database per service;
- S3: a moto server (the bucket created), or any endpoint given as CRISP_STACK_S3_ENDPOINT;
- a Dask scheduler and 2 workers (dashboard on bokeh);
- an MLflow tracking server on its own database, artifacts on S3;
- Airflow 3: api-server, scheduler, dag-processor and triggerer, LocalExecutor on Postgres, this repo's
  dags/, the execution API URL and one JWT secret shared by every component.
`up` also writes `<state>/crisp.env`, the settings that point Crisp (the CLI, the DAG tasks) at the
stack: `set -a; . .stack/crisp.env` and `crisp ingest ...` runs against it. Each service runs in its own
process group with its log in `<state>/logs/`; `down` stops them all and the database cluster, and
`down --purge` also deletes the state and the database.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ENV_FILE = REPO / "infra" / "stack.env"
HOST = "127.0.0.1"


def wiring() -> dict[str, str]:
    """infra/stack.env, with any of its variables overridden by the environment."""
    values = {}
    for line in ENV_FILE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            values[key.strip()] = os.environ.get(key.strip(), value.strip())
    return values


def state_dir() -> Path:
    return Path(os.environ.get("CRISP_STACK_DIR", REPO / ".stack")).resolve()


def service_env(w: dict[str, str], state: Path) -> dict[str, str]:
    """The environment of every service and of `crisp.env`: Crisp, AWS and Airflow settings."""
    pg = f"{w['CRISP_STACK_PG_USER']}:{w['CRISP_STACK_PG_PASSWORD']}@{HOST}:{w['CRISP_STACK_PG_PORT']}"
    s3 = os.environ.get("CRISP_STACK_S3_ENDPOINT") or f"http://{HOST}:{w['CRISP_STACK_S3_PORT']}"
    airflow = f"http://{HOST}:{w['CRISP_STACK_AIRFLOW_PORT']}"
    env = {key: value for key, value in w.items() if not key.startswith("CRISP_STACK_")}
    env.update(
        CRISP_S3__ENDPOINT_URL=s3,
        CRISP_DASK_SCHEDULER=f"tcp://{HOST}:{w['CRISP_STACK_DASK_PORT']}",
        CRISP_MLFLOW_TRACKING_URI=f"http://{HOST}:{w['CRISP_STACK_MLFLOW_PORT']}",
        AWS_ACCESS_KEY_ID=w["CRISP_S3__KEY"],
        AWS_SECRET_ACCESS_KEY=w["CRISP_S3__SECRET"],
        AWS_DEFAULT_REGION="us-east-1",
        MLFLOW_S3_ENDPOINT_URL=s3,
        AIRFLOW_HOME=str(state / "airflow"),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"postgresql+psycopg2://{pg}/{w['CRISP_STACK_AIRFLOW_DB']}",
        AIRFLOW__CORE__DAGS_FOLDER=str(REPO / "dags"),
        AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"{airflow}/execution/",
        AIRFLOW__API__BASE_URL=airflow,
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="True",  # a dev stack: every caller is admin
        AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
        AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="30",
        # the default side ports would clash with a second stack on the machine
        AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK="False",
        AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(free_port()),
        AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=str(free_port()),
        DASK_DISTRIBUTED__NANNY__PRE_SPAWN_ENVIRON="{'MALLOC_TRIM_THRESHOLD_': None}",  # pipeline/cluster.py
        PYTHONPATH=str(REPO),
    )
    return env


def services(w: dict[str, str], state: Path) -> list[tuple[str, list[str], str | None]]:
    """(name, command, health URL) of every long-running service, in start order."""
    mlflow_db = (
        f"postgresql+psycopg2://{w['CRISP_STACK_PG_USER']}:{w['CRISP_STACK_PG_PASSWORD']}@{HOST}:"
        f"{w['CRISP_STACK_PG_PORT']}/{w['CRISP_STACK_MLFLOW_DB']}"
    )
    dask = f"tcp://{HOST}:{w['CRISP_STACK_DASK_PORT']}"
    mlflow_port, airflow_port = w["CRISP_STACK_MLFLOW_PORT"], w["CRISP_STACK_AIRFLOW_PORT"]
    found = [
        (
            "dask-scheduler",
            [str(BIN / "dask"), "scheduler", "--host", HOST, "--port", w["CRISP_STACK_DASK_PORT"],
             "--dashboard-address", f"{HOST}:{w['CRISP_STACK_DASK_DASHBOARD_PORT']}"],
            f"http://{HOST}:{w['CRISP_STACK_DASK_DASHBOARD_PORT']}/health",
        ),
        *(
            (f"dask-worker-{n}", [str(BIN / "dask"), "worker", dask, "--nthreads", "1", "--name", f"w{n}",
                                  "--local-directory", str(state / "dask")], None)
            for n in (1, 2)
        ),
        (
            "mlflow",
            [str(BIN / "mlflow"), "server", "--host", HOST, "--port", mlflow_port, "--backend-store-uri",
             mlflow_db, "--artifacts-destination", f"s3://{w['CRISP_STACK_BUCKET']}/mlflow", "--workers", "1",
             "--allowed-hosts", f"{HOST}:{mlflow_port},localhost:{mlflow_port}"],
            f"http://{HOST}:{mlflow_port}/health",
        ),
        ("airflow-api-server", [str(BIN / "airflow"), "api-server", "-H", HOST, "-p", airflow_port, "-w", "1"],
         f"http://{HOST}:{airflow_port}/api/v2/monitor/health"),
        ("airflow-scheduler", [str(BIN / "airflow"), "scheduler"], None),
        ("airflow-dag-processor", [str(BIN / "airflow"), "dag-processor"], None),
        ("airflow-triggerer", [str(BIN / "airflow"), "triggerer"], None),
    ]  # fmt: skip
    if not os.environ.get("CRISP_STACK_S3_ENDPOINT"):
        moto = [str(BIN / "moto_server"), "-H", HOST, "-p", w["CRISP_STACK_S3_PORT"]]
        found.insert(0, ("s3", moto, f"http://{HOST}:{w['CRISP_STACK_S3_PORT']}/moto-api/"))
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


# -- PostgreSQL ----------------------------------------------------------------------------------------
def _pg_bin(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))), None)
    if found is None:
        subprocess.run(["apt-get", "install", "-y", "-q", "postgresql"], check=True, capture_output=True)
        return _pg_bin(name)
    return str(found)


def _as_postgres(command: list[str]) -> list[str]:
    """Postgres refuses to run as root: run its tools as the `postgres` user then."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def pg_data_dir(state: Path) -> Path:
    if os.geteuid() != 0:
        return state / "pg"
    # the postgres user must reach its data: not under a root-only folder, so a stable folder in /tmp
    return (
        Path(tempfile.gettempdir()) / f"crisp-stack-pg-{hashlib.sha256(str(state).encode()).hexdigest()[:12]}"
    )


def start_postgres(w: dict[str, str], state: Path) -> None:
    data = pg_data_dir(state)
    if not (data / "PG_VERSION").exists():
        data.mkdir(parents=True, exist_ok=True)
        password = data.parent / f".{data.name}.pw"
        password.write_text(w["CRISP_STACK_PG_PASSWORD"] + "\n")
        if os.geteuid() == 0:
            shutil.chown(data, "postgres", "postgres")
            shutil.chown(password, "postgres", "postgres")
        initdb = [_pg_bin("initdb"), "-D", str(data), "-U", w["CRISP_STACK_PG_USER"], f"--pwfile={password}",
                  "--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8"]  # fmt: skip
        subprocess.run(_as_postgres(initdb), check=True, capture_output=True)
        password.unlink()
    options = f"-p {w['CRISP_STACK_PG_PORT']} -k {data} -c listen_addresses={HOST}"
    start = [_pg_bin("pg_ctl"), "-D", str(data), "-l", str(data / "server.log"), "-o", options, "-w", "start"]
    running = subprocess.run(
        _as_postgres([_pg_bin("pg_ctl"), "-D", str(data), "status"]), capture_output=True
    )
    if running.returncode != 0:
        done = subprocess.run(_as_postgres(start), capture_output=True, text=True)
        if done.returncode != 0:
            log = (
                (data / "server.log").read_text(errors="replace")[-1500:]
                if (data / "server.log").exists()
                else ""
            )
            raise SystemExit(f"stack: postgres did not start: {done.stderr.strip()}\n{log}")
    import psycopg2

    connection = psycopg2.connect(
        host=HOST, port=w["CRISP_STACK_PG_PORT"], user=w["CRISP_STACK_PG_USER"],
        password=w["CRISP_STACK_PG_PASSWORD"], dbname="postgres",
    )  # fmt: skip
    connection.autocommit = True
    with connection.cursor() as cursor:
        for name in (w["CRISP_STACK_AIRFLOW_DB"], w["CRISP_STACK_MLFLOW_DB"]):
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cursor.fetchone() is None:
                cursor.execute(f'CREATE DATABASE "{name}"')
    connection.close()


def stop_postgres(state: Path) -> None:
    data = pg_data_dir(state)
    if (data / "postmaster.pid").exists():
        subprocess.run(_as_postgres([_pg_bin("pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]),
                       capture_output=True)  # fmt: skip


# -- processes -----------------------------------------------------------------------------------------
def start(name: str, command: list[str], env: dict[str, str], state: Path) -> None:
    pid_file = state / "pids" / f"{name}.pid"
    if pid_file.exists():
        previous = int(pid_file.read_text())
        if _alive(previous):
            return
        # A leader killed with SIGKILL leaves its children: LocalExecutor workers forked from the scheduler
        # share its database connection, and keep its last transaction (and the dag_run row locks) open,
        # which stalls the restarted scheduler. End the whole old group first.
        _end_group(previous)
    log = open(state / "logs" / f"{name}.log", "ab")  # noqa: SIM115 - the child keeps it
    process = subprocess.Popen(
        command,
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=REPO,
        start_new_session=True,
    )
    pid_file.write_text(str(process.pid))


def _end_group(leader: int, grace_s: float = 5.0) -> None:
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(leader, sig)
        except (ProcessLookupError, PermissionError):
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                os.killpg(leader, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)


def stop(name: str, state: Path, grace_s: float = 20.0) -> None:
    pid_file = state / "pids" / f"{name}.pid"
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text())
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)  # the whole group: api-server workers, task processes, Dask nannies
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.2)
    pid_file.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie child of ours counts as gone
        return os.waitpid(pid, os.WNOHANG) == (0, 0)
    except ChildProcessError:
        return True


def wait_healthy(url: str, timeout_s: float, name: str, state: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                if answer.status < 500:
                    return
        except OSError:
            time.sleep(1.0)
    tail = (state / "logs" / f"{name}.log").read_text(errors="replace")[-2000:]
    raise SystemExit(
        f"stack: {name} did not become healthy at {url} within {timeout_s:.0f} s; log tail:\n{tail}"
    )


def up() -> int:
    w, state = wiring(), state_dir()
    for folder in ("logs", "pids", "airflow", "dask"):
        (state / folder).mkdir(parents=True, exist_ok=True)
    env = service_env(w, state)
    (state / "crisp.env").write_text("".join(f"{k}={shlex.quote(v)}\n" for k, v in sorted(env.items())))
    start_postgres(w, state)
    migrated = subprocess.run([str(BIN / "airflow"), "db", "migrate"], env={**os.environ, **env},
                              capture_output=True, text=True, cwd=REPO)  # fmt: skip
    if migrated.returncode != 0:
        raise SystemExit(f"stack: airflow db migrate failed:\n{migrated.stderr[-2000:]}")
    pool = [str(BIN / "airflow"), "pools", "set", "crisp_heavy", w["CRISP_STACK_HEAVY_SLOTS"],
            "CPU-heavy Crisp tasks (ingest, pairs builds) at once on this host"]  # fmt: skip
    subprocess.run(pool, env={**os.environ, **env}, check=True, capture_output=True, cwd=REPO)
    for name, command, health in services(w, state):
        start(name, command, env, state)
        if health:
            wait_healthy(health, 180, name, state)
        if name == "s3":
            _create_bucket(env, w["CRISP_STACK_BUCKET"])
    status()
    return 0


def _create_bucket(env: dict[str, str], bucket: str) -> None:
    import s3fs

    fs = s3fs.S3FileSystem(key=env["CRISP_S3__KEY"], secret=env["CRISP_S3__SECRET"],
                           client_kwargs={"endpoint_url": env["CRISP_S3__ENDPOINT_URL"]})  # fmt: skip
    if not fs.exists(bucket):
        fs.mkdir(bucket)


def down(purge: bool = False) -> int:
    w, state = wiring(), state_dir()
    for name, _, _ in reversed(services(w, state)):
        stop(name, state)
    stop_postgres(state)
    if purge:  # the database cluster lives outside the state folder when we run as root
        shutil.rmtree(pg_data_dir(state), ignore_errors=True)
        shutil.rmtree(state, ignore_errors=True)
        print(f"stack: stopped, {state} and its database deleted")
    else:
        print(f"stack: stopped (state kept in {state}; `stack.py down --purge` deletes it)")
    return 0


def status() -> int:
    w, state = wiring(), state_dir()
    urls = {
        "s3": os.environ.get("CRISP_STACK_S3_ENDPOINT") or f"http://{HOST}:{w['CRISP_STACK_S3_PORT']}",
        "dask-scheduler": f"tcp://{HOST}:{w['CRISP_STACK_DASK_PORT']} (dashboard http://{HOST}:"
        f"{w['CRISP_STACK_DASK_DASHBOARD_PORT']}/status)",
        "mlflow": f"http://{HOST}:{w['CRISP_STACK_MLFLOW_PORT']} (MLflow UI)",
        "airflow-api-server": f"http://{HOST}:{w['CRISP_STACK_AIRFLOW_PORT']} (Airflow UI)",
    }
    running = 0
    for name, _, _ in services(w, state):
        pid_file = state / "pids" / f"{name}.pid"
        alive = pid_file.exists() and _alive(int(pid_file.read_text()))
        running += alive
        print(f"{name:22s} {'up  ' if alive else 'DOWN'} {urls.get(name, '')}")
    print(f"{'postgres':22s} {'up  ' if (pg_data_dir(state) / 'postmaster.pid').exists() else 'DOWN'} "
          f"{HOST}:{w['CRISP_STACK_PG_PORT']} (databases {w['CRISP_STACK_AIRFLOW_DB']}, {w['CRISP_STACK_MLFLOW_DB']})")  # fmt: skip
    print(f"settings for crisp: set -a; . {state / 'crisp.env'}; set +a")
    return 0 if running == len(services(w, state)) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stack", description=__doc__.split("\n")[0])
    parser.add_argument("action", choices=["up", "down", "status"])
    parser.add_argument("--purge", action="store_true", help="with down: delete the state and the database")
    args = parser.parse_args(argv)
    if args.action == "down":
        return down(purge=args.purge)
    return {"up": up, "status": status}[args.action]()


if __name__ == "__main__":
    sys.exit(main())
