"""infra/docker-compose.yml and infra/Dockerfile, checked without a Docker daemon.

`docker-compose config` validates the file and resolves it (anchors, env_file, interpolation from
infra/stack.env); the tests read that resolved form for the wiring: every dependency waits for health or
completion, one database each for Airflow and MLflow, one execution API URL and JWT secret for every
Airflow component, pinned images. The Dockerfile's runtime package list is computed the way the build
computes it (infra/runtime-requirements.sh) and must hold no test tool.
"""

from __future__ import annotations

import fnmatch
import re
import subprocess
import tomllib
from urllib.parse import urlparse

import pytest
import yaml

from tests.infra.conftest import INFRA, REPO

COMPOSE = INFRA / "docker-compose.yml"
ONE_SHOT = {"s3-init", "reference-push", "airflow-init"}


def _compose(docker_compose: str, *args: str, env_file: bool = True) -> subprocess.CompletedProcess:
    flags = ["--env-file", str(INFRA / "stack.env")] if env_file else []
    return subprocess.run(
        [docker_compose, *flags, "-f", str(COMPOSE), "--profile", "train", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )


@pytest.fixture(scope="module")
def config(docker_compose) -> dict:
    done = _compose(docker_compose, "config")
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


@pytest.fixture(scope="module")
def services(config) -> dict[str, dict]:
    return config["services"]


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load(COMPOSE.read_text())  # anchors and merge keys resolved, nothing interpolated


def _command(service: dict) -> list[str]:
    command = service.get("command") or []
    return command.split() if isinstance(command, str) else [str(part) for part in command]


def _airflow_services(services: dict) -> dict[str, dict]:
    found = {}
    for name, service in services.items():
        command = _command(service)
        if command[:1] == ["airflow"] or (command[:2] == ["bash", "-c"] and "airflow " in command[2]):
            found[name] = service
    return found


def _option(command: list[str], name: str) -> str:
    for i, part in enumerate(command):
        if part == name:
            return command[i + 1]
        if part.startswith(name + "="):
            return part.split("=", 1)[1]
    raise AssertionError(f"{name} not in {command}")


def test_config_validates_and_needs_the_wiring_file(docker_compose, services):
    assert {"minio", "postgres", "mlflow", "dask-scheduler", "dask-worker", "train"} <= services.keys()
    assert {"airflow-api-server", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"} <= (
        services.keys()
    )
    without = _compose(docker_compose, "config", env_file=False)
    assert without.returncode != 0
    assert "--env-file infra/stack.env" in without.stderr  # says how to run it, instead of blank values


def test_dependencies_wait_for_health_or_completion(services):
    depended_on = set()
    for name, service in services.items():
        for target, spec in (service.get("depends_on") or {}).items():
            condition = spec["condition"]
            depended_on.add(target)
            assert condition in {"service_healthy", "service_completed_successfully"}, (name, target)
            if condition == "service_healthy":
                check = services[target].get("healthcheck") or {}
                assert check.get("test") and not check.get("disable"), f"{target} has no healthcheck"
            else:
                assert target in ONE_SHOT and services[target].get("restart") == "no", (name, target)
    for target in depended_on - ONE_SHOT:  # every long-running service others need can say it is up
        assert services[target].get("healthcheck", {}).get("test"), target
    # the Airflow components wait for `airflow db migrate`, not just for its container to start
    for name in ("airflow-api-server", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"):
        assert services[name]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
    assert _command(services["airflow-init"])[2].startswith("airflow db migrate")


def test_airflow_and_mlflow_have_separate_databases(services, stack_env):
    airflow_db = {
        name: s["environment"]["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        for name, s in _airflow_services(services).items()
    }
    assert len(set(airflow_db.values())) == 1, airflow_db
    airflow_url = urlparse(next(iter(airflow_db.values())))
    mlflow_url = urlparse(_option(_command(services["mlflow"]), "--backend-store-uri"))
    for url in (airflow_url, mlflow_url):
        assert url.scheme == "postgresql+psycopg2" and url.hostname == "postgres"
        assert url.port == int(services["postgres"]["environment"]["PGPORT"])
    assert airflow_url.path != mlflow_url.path, "one database, one alembic_version table: migrations clash"
    assert airflow_url.path == "/" + services["postgres"]["environment"]["POSTGRES_DB"]
    assert mlflow_url.path == "/" + stack_env["CRISP_STACK_MLFLOW_DB"]
    # the postgres image runs the init script that creates MLflow's database, reading stack.env's name
    mounts = [v for v in services["postgres"]["volumes"] if "/docker-entrypoint-initdb.d/" in str(v)]
    assert len(mounts) == 1 and str(mounts[0]).startswith(str(INFRA / "postgres-init.sh"))
    assert "CREATE DATABASE" in (INFRA / "postgres-init.sh").read_text()
    assert services["postgres"]["environment"]["CRISP_STACK_MLFLOW_DB"] == stack_env["CRISP_STACK_MLFLOW_DB"]


def test_every_airflow_component_reaches_the_execution_api(services, stack_env):
    airflow = _airflow_services(services)
    assert set(airflow) == {
        "airflow-init",
        "airflow-api-server",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
    }
    port = _option(_command(services["airflow-api-server"]), "--port")
    for name, service in airflow.items():
        env = service["environment"]
        assert (
            env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == f"http://airflow-api-server:{port}/execution/"
        )
        assert env["AIRFLOW__API_AUTH__JWT_SECRET"] == stack_env["AIRFLOW__API_AUTH__JWT_SECRET"] != "", name
        # each container writes its own airflow.cfg: without one shared key each would generate its own
        assert env["AIRFLOW__CORE__FERNET_KEY"] == stack_env["AIRFLOW__CORE__FERNET_KEY"] != "", name
        assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"


def test_every_crisp_container_reads_stack_env(raw, services, stack_env):
    for name, service in raw["services"].items():
        if str(service.get("image", "")).startswith("crisp:") or name == "postgres":
            assert "stack.env" in service.get("env_file", []), name
            env = services[name]["environment"]
            for key, value in stack_env.items():  # nothing in the compose file overrides the wiring
                assert str(env.get(key)) == value, (name, key)


def test_interpolated_variables_come_from_stack_env(stack_env):
    text = COMPOSE.read_text()
    names = set(re.findall(r"(?<!\$)\$\{(\w+)", text))
    host_side = {"CRISP_SHARED_DATA"}  # the host folder of the reference sets (a default is given)
    assert names - host_side <= stack_env.keys(), sorted(names - host_side - stack_env.keys())
    assert names & host_side <= set(re.findall(r"(?<!\$)\$\{(\w+):-", text))


def test_images_are_pinned(services, version):
    for name, service in services.items():
        image = service["image"]
        repo, _, tag = image.rpartition(":")
        assert repo and tag and tag != "latest" and "/" not in tag, (name, image)
        if repo == "crisp":
            target = service["build"]["target"]
            assert image == f"crisp:{version}-{target}", (name, image)
            assert service["build"]["dockerfile"] == "infra/Dockerfile"
    assert services["minio"]["image"].startswith("quay.io/minio/minio:RELEASE.")


def test_bucket_reference_sets_and_artifacts_on_the_stack_bucket(services, stack_env):
    bucket = stack_env["CRISP_STACK_BUCKET"]
    assert stack_env["CRISP_ROOT"].startswith(f"s3://{bucket}/")
    init = services["s3-init"]
    assert "fs.mkdir(bucket)" in _command(init)[2]
    assert init["depends_on"]["minio"]["condition"] == "service_healthy"
    push = _command(services["reference-push"])
    assert "crisp reference push" in push[2] and "/Set5" in push[2] and "/Set14" in push[2]
    assert (
        services["reference-push"]["depends_on"]["s3-init"]["condition"] == "service_completed_successfully"
    )
    assert _option(_command(services["mlflow"]), "--artifacts-destination").startswith(f"s3://{bucket}/")
    endpoint = urlparse(services["mlflow"]["environment"]["CRISP_S3__ENDPOINT_URL"])
    assert (endpoint.hostname, str(endpoint.port)) == ("minio", stack_env["CRISP_STACK_S3_PORT"])


def test_mlflow_accepts_the_hosts_that_call_it(services):
    allowed = _option(_command(services["mlflow"]), "--allowed-hosts").split(",")
    tracking = urlparse(services["airflow-scheduler"]["environment"]["CRISP_MLFLOW_TRACKING_URI"])
    port = _option(_command(services["mlflow"]), "--port")
    assert tracking.port == int(port)
    for host in (tracking.netloc, f"localhost:{port}"):  # other containers; the healthcheck / a browser
        assert any(fnmatch.fnmatch(host, pattern) for pattern in allowed), host


def test_gpu_training_service(services):
    train = services["train"]
    assert train["profiles"] == ["train"]
    assert train["entrypoint"] == ["crisp", "train"]
    assert train["build"]["target"] == "gpu"
    devices = train["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]
    assert train.get("shm_size")  # DataLoader workers; Docker's default /dev/shm is 64 MB


# -- the image ---------------------------------------------------------------------------------------


def _names(lines: list[str]) -> set[str]:
    return {re.sub(r"[-_.]+", "-", line.split("==")[0]).lower() for line in lines if "==" in line}


def _requirement_names(requirements: list[str]) -> set[str]:
    return _names([re.match(r"[A-Za-z0-9._-]+", r).group(0) + "==" for r in requirements])


@pytest.fixture(scope="module")
def runtime_lines() -> list[str]:
    done = subprocess.run(
        ["bash", str(INFRA / "runtime-requirements.sh"), "requirements.lock", "pyproject.toml"],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    )
    return done.stdout.splitlines()


def test_runtime_requirements_are_the_locks_runtime_closure(runtime_lines):
    lock = (REPO / "requirements.lock").read_text().splitlines()
    assert set(runtime_lines) <= set(lock)  # the lock's own pins, unchanged
    with open(REPO / "pyproject.toml", "rb") as f:
        project = tomllib.load(f)["project"]
    names = _names(runtime_lines)
    runtime = _requirement_names(project["dependencies"])
    assert runtime <= names
    assert {"psycopg2-binary", "asyncpg", "boto3", "apache-airflow", "mlflow", "torch"} <= names
    test_tools = _requirement_names(project["optional-dependencies"]["dev"]) | {
        "iniconfig",
        "pytest-timeout",
        "responses",
        "cfn-lint",
        "py-partiql-parser",
    }
    assert not names & test_tools, sorted(names & test_tools)


def test_dockerfile_installs_runtime_pins_and_torch_from_its_index():
    text = (INFRA / "Dockerfile").read_text()
    runs = [" ".join(r.split()) for r in re.findall(r"^RUN (.*?)(?<!\\)$", text, re.S | re.M)]
    installs = [r for r in runs if re.search(r"\b(pip install|pip sync)\b", r)]
    for run in installs:
        assert not re.search(r"(-r|--requirement|sync)\s+\S*requirements\.lock", run), run  # whole lock
        assert not re.search(r"\b(pytest|ruff|moto)\b", run), run
    assert any("-r runtime.txt" in r and "--no-deps" in r for r in installs)
    stage_names = re.findall(r"^FROM \S+ AS (\S+)$", text, re.M)
    assert {"cpu", "gpu"} <= set(stage_names)
    stages = re.split(r"^FROM ", text, flags=re.M)
    cpu = next(s for s in stages if s.startswith("deps AS torch-cpu"))
    gpu = next(s for s in stages if s.startswith("deps AS torch-gpu"))
    assert "TORCH_CPU_INDEX" in cpu and "+cpu" in cpu
    assert "ARG TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu" in text
    assert "+cpu" not in gpu and "TORCH_GPU_INDEX" in gpu and "--constraint runtime.txt" in gpu
    assert "--exclude torch" in text  # the lock's +cpu pin is replaced per target, not installed twice
