"""Launch on Kubernetes: a DAG's training as an Indexed Job, watched to its end, deleted if its task dies.

In: a TrainConfig, `KubernetesLaunch` (settings `launch.kubernetes.*`), the run's name, a callback per log
line of rank 0, an optional timeout. Out: `train_job` -> the objects to submit (the Job, a ConfigMap with
the run's train.yaml, and for more than one node the headless Service of the rendezvous); `run_job` -> 0
once the Job is Complete, else `TrainingFailed` with the Job's reason and rank 0's last log lines.

The Job is the first Job of `job_template` (infra/k8s/train-job.yaml by default, or a team's own manifest
with its node selectors, tolerations and resources): its image, settings (the `crisp-settings` ConfigMap,
the `crisp-s3` Secret), /dev/shm, `restartPolicy: Never` and per-index backoff are kept; the launcher sets
the name, the node/device topology (`torchrun`, Lightning reads its RANK / WORLD_SIZE) and the command,
`crisp train --config <mounted train.yaml>`. The train.yaml is the config the DAG resolved, with no storage
credentials in it: the pod's own settings supply them (crisp.commands.train `with_s3_options`).

One run, one Job name (`crisp-<task>-<hash of the run>`): a task retry first deletes what an earlier try
left running, then resumes from the run's `last.ckpt` at the same output. A SIGTERM / SIGINT to the task,
its timeout or any error while waiting deletes the Job with foreground propagation, so the pods are
stopped (SIGTERM, their grace period) and the ConfigMap and Service, owned by the Job, go with it.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from training.fit.launch import REPO, TrainingFailed, terminate_on_signals

log = logging.getLogger(__name__)

JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
INDEX_LABEL = "batch.kubernetes.io/job-completion-index"


class KubernetesLaunch(BaseModel):
    """The Kubernetes launcher's settings (`launch.kubernetes.*`)."""

    model_config = ConfigDict(extra="forbid")

    connection_id: str = "kubernetes_default"  # Airflow connection; absent: in-cluster, else ~/.kube/config
    namespace: str = "default"
    job_template: str = str(REPO / "infra" / "k8s" / "train-job.yaml")  # its first Job is the template
    image: str | None = None  # instead of the template's image
    config_mount: str = "/etc/crisp-train"  # where the pod finds the run's train.yaml
    master_port: int = Field(default=29500, ge=1, le=65535)
    poll_s: float = Field(default=10.0, gt=0)  # between Job status reads


def job_name(task: str, run_name: str) -> str:
    """A DNS-1123 name that one run always gets (a retry finds its earlier try's Job by it)."""
    return f"crisp-{task}-{hashlib.sha256(run_name.encode()).hexdigest()[:12]}"


def template_job(path: str) -> dict:
    """The first Job of a multi-document manifest; TrainingFailed naming the file when there is none."""
    try:
        with open(path) as fh:
            job = next((d for d in yaml.safe_load_all(fh) if d and d.get("kind") == "Job"), None)
    except (OSError, yaml.YAMLError) as exc:
        raise TrainingFailed(f"launch.kubernetes.job_template {path}: {exc}") from exc
    if job is None:
        raise TrainingFailed(f"launch.kubernetes.job_template {path} has no Job")
    return job


def pod_config(config) -> str:
    """The run's config as the pod reads it: resolved by the DAG, without storage credentials."""
    dumped = config.model_dump(mode="json")
    dumped["output_storage_options"] = {}
    dumped["data"]["storage_options"] = {}
    return yaml.safe_dump(dumped)


def train_job(config, launch: KubernetesLaunch, run_name: str) -> list[dict]:
    """[Job, ConfigMap, Service (only for more than one node)] for `config`; see the module docstring."""
    name = job_name(config.task, run_name)
    nodes, devices = config.trainer.num_nodes, config.trainer.devices
    if not isinstance(devices, int):
        raise TrainingFailed('trainer.devices "auto" cannot size a Kubernetes Job: give a number')
    labels = {"app.kubernetes.io/name": "crisp-train", "crisp.task": config.task}
    meta = {"name": name, "namespace": launch.namespace, "labels": labels}
    job = copy.deepcopy(template_job(launch.job_template))
    job["metadata"] = copy.deepcopy(meta)
    spec = job["spec"]
    spec.update(completions=nodes, parallelism=nodes, completionMode="Indexed")
    pod = spec["template"]
    pod.setdefault("metadata", {}).setdefault("labels", {}).update(labels)
    pod["spec"]["subdomain"] = name
    container = pod["spec"]["containers"][0]
    if launch.image:
        container["image"] = launch.image
    limits = container.get("resources", {}).get("limits", {})
    if "nvidia.com/gpu" in limits:  # a GPU template: one GPU per process of a node
        limits["nvidia.com/gpu"] = devices
    topology = (
        ["--standalone"]
        if nodes == 1
        else [
            f"--nnodes={nodes}",
            "--node-rank=$(JOB_COMPLETION_INDEX)",
            f"--master-addr={name}-0.{name}",
            f"--master-port={launch.master_port}",
        ]
    )
    container["command"] = ["torchrun"]
    container["args"] = [
        *topology,
        f"--nproc-per-node={devices}",
        "-m",
        "crisp",
        "train",
        f"--config={launch.config_mount.rstrip('/')}/train.yaml",
    ]
    container.setdefault("volumeMounts", []).append(
        {"name": "train-config", "mountPath": launch.config_mount, "readOnly": True}
    )
    pod["spec"].setdefault("volumes", []).append({"name": "train-config", "configMap": {"name": name}})
    config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": copy.deepcopy(meta)}
    config_map["data"] = {"train.yaml": pod_config(config)}
    objects = [job, config_map]
    if nodes > 1:
        service = {"apiVersion": "v1", "kind": "Service", "metadata": copy.deepcopy(meta)}
        service["spec"] = {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,  # rank 0's name must resolve while the pods start
            "selector": {JOB_NAME_LABEL: name},
            "ports": [{"name": "rendezvous", "port": launch.master_port}],
        }
        objects.append(service)
    return objects


def run_job(
    objects: list[dict],
    launch: KubernetesLaunch,
    on_line: Callable[[str], None] = lambda line: None,
    timeout_s: float | None = None,
    api_client=None,
    tail_lines: int = 40,
) -> int:
    """Submit `objects` (train_job's), follow rank 0's log, wait for the Job; see the module docstring.
    `api_client`: a kubernetes ApiClient, default the Airflow connection's (KubernetesHook)."""
    from kubernetes import client

    if api_client is None:
        from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook

        api_client = KubernetesHook(conn_id=launch.connection_id).api_client
    batch, core = client.BatchV1Api(api_client), client.CoreV1Api(api_client)
    job, *owned = objects
    name, namespace = job["metadata"]["name"], launch.namespace
    tail: list[str] = []
    stop = threading.Event()

    def keep(line: str) -> None:
        on_line(line)
        tail.append(line)
        del tail[:-tail_lines]

    follower = threading.Thread(target=_follow_rank0, args=(core, name, namespace, keep, stop), daemon=True)
    deadline = time.monotonic() + timeout_s if timeout_s else None
    done = False
    # from before the Job exists: a signal between its creation and the wait must delete it too
    with terminate_on_signals(lambda: _delete_job(batch, name, namespace)):
        try:
            _delete_job(
                batch, name, namespace, wait_s=300
            )  # an earlier try of this run must not train beside it
            created = batch.create_namespaced_job(namespace, job)
            owner = {"apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": created.metadata.uid}
            for obj in owned:
                obj["metadata"]["ownerReferences"] = [{**owner, "blockOwnerDeletion": True}]
                create = (
                    core.create_namespaced_config_map
                    if obj["kind"] == "ConfigMap"
                    else core.create_namespaced_service
                )
                create(namespace, obj)
            log.info("submitted Job %s/%s", namespace, name)
            follower.start()
            while (reason := _finished(batch.read_namespaced_job_status(name, namespace))) is None:
                if deadline is not None and time.monotonic() > deadline:
                    raise TrainingFailed(f"training Job {name} ran past its {timeout_s:g} s timeout")
                time.sleep(launch.poll_s)
            done = True
        finally:
            stop.set()
            if not done:  # an error, a timeout or a signal: the pods must not run on
                _delete_job(batch, name, namespace)
            if follower.is_alive():
                follower.join(timeout=10)
    if reason != "Complete":
        raise TrainingFailed(f"training Job {name} failed ({reason}):\n" + "\n".join(tail))
    return 0


def _finished(job) -> str | None:
    """'Complete', the failure's reason, or None while the Job runs."""
    for condition in (job.status and job.status.conditions) or []:
        if condition.status == "True" and condition.type == "Complete":
            return "Complete"
        if condition.status == "True" and condition.type == "Failed":
            return f"{condition.reason}: {condition.message}" if condition.message else str(condition.reason)
    return None


def _delete_job(batch, name: str, namespace: str, wait_s: float = 0.0) -> None:
    """Delete the Job (foreground: its pods first, then what it owns); a missing Job is fine."""
    from kubernetes.client.exceptions import ApiException

    try:
        batch.delete_namespaced_job(name, namespace, propagation_policy="Foreground")
    except ApiException as exc:
        if exc.status == 404:
            return
        raise
    log.info("deleted Job %s/%s", namespace, name)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            batch.read_namespaced_job(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return
            raise
        time.sleep(1.0)


def _follow_rank0(core, name: str, namespace: str, on_line: Callable[[str], None], stop) -> None:
    """Stream the log of each pod of index 0 in turn (a retried index gets a new pod), each to its end;
    once `stop` is set, the pods already started are still read, then it returns."""
    from kubernetes.client.exceptions import ApiException

    followed: set[str] = set()
    selector = f"{JOB_NAME_LABEL}={name},{INDEX_LABEL}=0"
    while True:
        try:
            pods = core.list_namespaced_pod(namespace, label_selector=selector).items
            ready = [p for p in pods if p.metadata.name not in followed and p.status.phase != "Pending"]
            if ready:
                pod = min(ready, key=lambda p: str(p.metadata.creation_timestamp or ""))
                followed.add(pod.metadata.name)
                stream = core.read_namespaced_pod_log(
                    pod.metadata.name, namespace, follow=True, _preload_content=False
                )
                _lines(stream, on_line)
                continue
        except (ApiException, OSError) as exc:  # the API went away for a moment: try again
            log.debug("log follow of %s: %s", name, exc)
        if stop.is_set():
            return
        stop.wait(1.0)


def _lines(stream: Any, on_line: Callable[[str], None]) -> None:
    """Each whole line of a streamed log response, until it ends (its pod ended)."""
    pending = b""
    try:
        for chunk in stream.stream(4096):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                on_line(line.decode(errors="replace").rstrip())
        if pending:
            on_line(pending.decode(errors="replace").rstrip())
    finally:
        stream.release_conn()
