"""Launch on Kubernetes: the Job built from infra/k8s/train-job.yaml passes the Kubernetes schemas and keeps
its contract; run_job follows rank 0, reports a failure with its reason and log tail, replaces an earlier
try's Job, and deletes the Job (its pods' processes stopped) on a timeout.

Kubernetes cannot run here: tests/support/kube_api.py is the API server and kubelet (real `kubernetes`
client, pods as local processes)."""

from __future__ import annotations

import sys
import time

import kubernetes_validate
import pytest
import yaml
from kubernetes import client

from tests.conftest import REPO
from tests.support.kube_api import KubeAPI
from training.fit.launch import TrainingFailed
from training.fit.launch_k8s import KubernetesLaunch, job_name, run_job, train_job
from training.fit.train import load_train_config


def _config(nodes=1, devices=1):
    overrides = [
        "data.root=s3://crisp/prod",
        "data.storage_options={key: AKIA-secret, secret: s3cr3t}",
        "output=s3://crisp/prod/runs/quality_train/manual_1",
        "output_storage_options={key: AKIA-secret, secret: s3cr3t}",
        f"trainer.num_nodes={nodes}",
        f"trainer.devices={devices}",
    ]
    return load_train_config(REPO / "training" / "configs" / "quality_net.yaml", overrides)


@pytest.mark.parametrize("nodes", [1, 2])
def test_the_job_passes_the_schemas_and_keeps_the_template_contract(nodes):
    objects = train_job(
        _config(nodes=nodes, devices=4), KubernetesLaunch(image="registry/crisp:1-gpu"), "run 1"
    )
    for obj in objects:
        kubernetes_validate.validate(obj, kubernetes_validate.latest_version(), strict=True)
    job, config_map, *service = objects
    name = job["metadata"]["name"]
    assert name == job_name("quality", "run 1") and len(name) <= 63
    spec = job["spec"]
    assert spec["completions"] == spec["parallelism"] == nodes and spec["completionMode"] == "Indexed"
    assert spec["backoffLimitPerIndex"] >= 1 and spec["maxFailedIndexes"] == 0
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    (container,) = pod["containers"]
    assert (
        container["image"] == "registry/crisp:1-gpu"
        and container["resources"]["limits"]["nvidia.com/gpu"] == 4
    )
    assert "/dev/shm" in {m["mountPath"] for m in container["volumeMounts"]}
    assert {"crisp-settings", "crisp-s3"} <= {next(iter(s.values()))["name"] for s in container["envFrom"]}
    # the command: torchrun around `crisp train` with the mounted config; it parses as the CLI's
    args = container["args"]
    assert container["command"] == ["torchrun"] and "--nproc-per-node=4" in args
    from crisp.cli import build_parser

    parsed = build_parser().parse_args(args[args.index("-m") + 2 :])
    assert parsed.train_config == "/etc/crisp-train/train.yaml"
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/etc/crisp-train"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert volume["configMap"]["name"] == config_map["metadata"]["name"]
    # the resolved config travels without credentials: the pod's settings (the Secret) supply them
    pod_config = yaml.safe_load(config_map["data"]["train.yaml"])
    assert "s3cr3t" not in config_map["data"]["train.yaml"]
    assert pod_config["output"] == "s3://crisp/prod/runs/quality_train/manual_1"
    assert (pod_config["trainer"]["num_nodes"], pod_config["trainer"]["devices"]) == (nodes, 4)
    if nodes == 1:
        assert "--standalone" in args and not service
    else:
        (service,) = service
        assert (
            f"--master-addr={name}-0.{name}" in args
            and pod["subdomain"] == service["metadata"]["name"] == name
        )
        assert service["spec"]["selector"] == {"batch.kubernetes.io/job-name": name}


def test_auto_devices_are_refused():
    with pytest.raises(TrainingFailed, match="auto"):
        train_job(_config(devices="auto"), KubernetesLaunch(), "run 1")


def _job(name: str, script: str, retries: int = 0) -> list[dict]:
    container = {"name": "train", "image": "crisp", "command": [sys.executable, "-c", script]}
    pod = {"restartPolicy": "Never", "containers": [container]}
    spec = {"completions": 1, "parallelism": 1, "completionMode": "Indexed", "backoffLimitPerIndex": retries}
    spec["template"] = {"spec": pod}
    return [{"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name}, "spec": spec}]


@pytest.fixture
def api():
    with KubeAPI() as server:
        yield server, client.ApiClient(client.Configuration(host=server.url))


FAST = KubernetesLaunch(poll_s=0.1)


def test_a_job_that_completes_streams_rank0(api):
    server, api_client = api
    lines = []
    script = "import time\nfor i in range(3): print('step', i, flush=True); time.sleep(0.1)"
    assert run_job(_job("ok", script), FAST, lines.append, api_client=api_client) == 0
    time.sleep(0.2)
    assert lines[:3] == ["step 0", "step 1", "step 2"]
    assert [j["status"]["conditions"][0]["type"] for j in server.jobs()] == ["Complete"]  # kept for its logs


def test_a_failed_job_raises_with_its_reason_and_log_tail_after_its_retries(api):
    server, api_client = api
    script = "import sys; print('loss nan', flush=True); sys.exit(3)"
    with pytest.raises(TrainingFailed, match=r"(?s)failed \(FailedIndexes.*loss nan"):
        run_job(_job("bad", script, retries=1), FAST, api_client=api_client)
    assert len(server.pods) == 2  # the index was retried once, in a new pod


def test_a_timeout_deletes_the_job_and_stops_its_pods(api):
    server, api_client = api
    with pytest.raises(TrainingFailed, match="timeout"):
        run_job(_job("slow", "import time; print('up', flush=True); time.sleep(600)"), FAST, timeout_s=2,
                api_client=api_client)  # fmt: skip
    assert server.jobs() == []
    (pod,) = server.pods.values()
    assert pod.process.poll() is not None


def test_an_earlier_try_is_deleted_before_the_new_job(api):
    server, api_client = api
    server.add(_job("retry", "import time; time.sleep(600)")[0] | {"status": {}})
    server.objects[("Job", "default", "retry")]["metadata"]["uid"] = "old"
    assert run_job(_job("retry", "print('second try')"), FAST, api_client=api_client) == 0
    (job,) = server.jobs()
    assert job["metadata"]["uid"] != "old"


def test_a_killed_caller_deletes_the_job_and_stops_its_pods(api):
    """SIGTERM to the process waiting on the Job (what Airflow sends a killed task) deletes the Job."""
    import json
    import signal
    import subprocess

    server, _ = api
    objects = _job("killed", "import time; print('up', flush=True); time.sleep(600)")
    caller = f"""
import json
from kubernetes import client
from training.fit.launch_k8s import KubernetesLaunch, run_job
run_job(json.loads({json.dumps(json.dumps(objects))}), KubernetesLaunch(poll_s=0.1),
        api_client=client.ApiClient(client.Configuration(host={server.url!r})))
"""
    process = subprocess.Popen([sys.executable, "-c", caller], cwd=REPO)
    deadline = time.monotonic() + 60
    while not any(p.obj["status"]["phase"] == "Running" for p in server.pods.values()):
        assert time.monotonic() < deadline and process.poll() is None, "the Job never started"
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) != 0
    assert server.jobs() == []
    (pod,) = server.pods.values()
    assert pod.process.poll() is not None
