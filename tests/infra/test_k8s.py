"""infra/k8s/*.yaml against the Kubernetes JSON schemas (kubernetes-validate ships them: no network), and
the training Job's contract: `crisp train` with the settings from a ConfigMap and the S3 keys from a
Secret, output on S3, /dev/shm in memory, no restart in place, retries counted per index.

Schemas: Kubernetes 1.29 (the first with backoffLimitPerIndex on by default), 1.33 (where it is GA) and
the newest bundled, strict (unknown fields are errors). Custom resources (the Dask operator's
DaskCluster) have no bundled schema: their pod and service specs are checked as a Pod and a Service.
"""

from __future__ import annotations

import re
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from tests.infra.conftest import INFRA, REPO

MANIFESTS = sorted((INFRA / "k8s").glob("*.yaml"))
VERSIONS = ("1.29.0", "1.33.0", kubernetes_validate.latest_version())


def _documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _core_resources(doc: dict) -> list[dict]:
    """The resource itself, or for a DaskCluster its embedded pod and service specs as core resources."""
    if not doc["apiVersion"].startswith("kubernetes.dask.org/"):
        return [doc]
    spec, name = doc["spec"], doc["metadata"]["name"]
    pods = [
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": f"{name}-{part}"},
            "spec": spec[part]["spec"],
        }
        for part in ("worker", "scheduler")
    ]
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}}
    return [*pods, {**service, "spec": spec["scheduler"]["service"]}]


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
@pytest.mark.parametrize("version", VERSIONS)
def test_manifests_match_the_kubernetes_schemas(path, version):
    for doc in _documents(path):
        for resource in _core_resources(doc):
            try:
                kubernetes_validate.validate(resource, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                where = ".".join(str(p) for p in exc.path)
                pytest.fail(f"{path.name} {resource['kind']} {where}: {exc.message} (Kubernetes {version})")


@pytest.fixture(scope="module")
def train() -> dict[str, dict]:
    return {doc["kind"]: doc for doc in _documents(INFRA / "k8s" / "train-job.yaml")}


def _container(job: dict) -> dict:
    (container,) = job["spec"]["template"]["spec"]["containers"]
    return container


def _flag(args: list[str], name: str) -> str:
    values = [a.split("=", 1)[1] for a in args if a.startswith(name + "=")]
    assert len(values) == 1, (name, args)
    return values[0]


def test_train_job_fails_cleanly_and_retries_per_index(train):
    spec = train["Job"]["spec"]
    assert spec["template"]["spec"]["restartPolicy"] == "Never"
    assert spec["completionMode"] == "Indexed"
    assert spec["backoffLimitPerIndex"] >= 1
    assert spec["maxFailedIndexes"] == 0  # a rank out of retries ends the run: DDP cannot finish without it
    assert spec["activeDeadlineSeconds"] > 0


def test_train_job_has_shared_memory(train):
    pod = train["Job"]["spec"]["template"]["spec"]
    (mount,) = [m for m in _container(train["Job"])["volumeMounts"] if m["mountPath"] == "/dev/shm"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert volume["emptyDir"]["medium"] == "Memory"


def test_train_job_runs_crisp_train_with_the_settings(train, version):
    container = _container(train["Job"])
    assert container["image"] == f"crisp:{version}-gpu"  # what `--target gpu` of infra/Dockerfile builds
    args = container["args"]
    assert container["command"] == ["torchrun"]
    module = args.index("-m")
    assert args[module + 1 : module + 3] == ["crisp", "train"], "the CLI that reads the Crisp settings"
    # the arguments parse as `crisp train` and name a training config that exists
    from crisp.cli import build_parser

    parsed = build_parser().parse_args(args[module + 2 :])
    assert (REPO / parsed.train_config).is_file()
    overrides = dict(item.split("=", 1) for item in parsed.overrides)
    # settings: a ConfigMap (CRISP_ROOT on S3, ...) and the S3 keys from a Secret
    sources = container["envFrom"]
    (config_map,) = [s["configMapRef"]["name"] for s in sources if "configMapRef" in s]
    (secret,) = [s["secretRef"]["name"] for s in sources if "secretRef" in s]
    assert train["ConfigMap"]["metadata"]["name"] == config_map
    settings = train["ConfigMap"]["data"]
    assert settings["CRISP_ROOT"].startswith("s3://")
    assert not {"CRISP_S3__KEY", "CRISP_S3__SECRET"} & settings.keys()  # credentials only in the Secret
    assert secret == "crisp-s3"
    # output on S3, one folder per Job (a retried pod resumes there)
    assert overrides["output"] == "$(CRISP_ROOT)/runs/sr_train/$(JOB_NAME)"
    names = {e["name"] for e in container.get("env", [])} | set(settings)
    assert {"CRISP_ROOT", "JOB_NAME"} <= names  # Kubernetes expands only variables the container has


def test_train_job_topology_is_consistent(train):
    job, service = train["Job"], train["Service"]
    spec, args = job["spec"], _container(job)["args"]
    nodes, per_node = int(_flag(args, "--nnodes")), int(_flag(args, "--nproc-per-node"))
    assert spec["completions"] == spec["parallelism"] == nodes
    assert _flag(args, "--node-rank") == "$(JOB_COMPLETION_INDEX)"
    overrides = dict(a.split("=", 2)[1:] for a in args if a.startswith("--set="))
    assert int(overrides["trainer.num_nodes"]) == nodes
    assert (
        int(overrides["trainer.devices"])
        == per_node
        == _container(job)["resources"]["limits"]["nvidia.com/gpu"]
    )
    # rank 0 is reachable by name: <job>-0.<subdomain>, the headless Service selecting the Job's pods
    pod = spec["template"]["spec"]
    assert _flag(args, "--master-addr") == f"{job['metadata']['name']}-0.{pod['subdomain']}"
    assert service["metadata"]["name"] == pod["subdomain"]
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["selector"] == {"batch.kubernetes.io/job-name": job["metadata"]["name"]}
    assert re.fullmatch(r"\d+", _flag(args, "--master-port"))
