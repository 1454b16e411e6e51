"""A Kubernetes control plane for tests: the REST paths the Job launcher uses, and a kubelet that runs pods
as local processes.

Kubernetes cannot run on these machines (no container runtime), so this stands in for the API server and
the nodes; the launcher talks to it through the real `kubernetes` client. In: nothing (or `image_paths`,
how the pod's image paths map to this machine, e.g. {"/app": repo}). Out: a running server on 127.0.0.1
(`url`, `kubeconfig()`), the stored objects (`objects`), the pods (`pods`, each with its process).

Served: create / read / delete of Jobs (`/apis/batch/v1/...`), ConfigMaps, Secrets and Services, pod lists
by label selector and pod logs (followed as chunks while the process runs). A created Indexed Job starts one
pod per completion index: its ConfigMap volumes are written under their mountPath, its environment is the
container's `envFrom` (ConfigMaps, Secrets) and `env` (values, `fieldRef` labels), plus PATH and
JOB_COMPLETION_INDEX; `$(VAR)` in command and args is expanded; `command + args` runs in its own session.
A pod that fails is retried under its index up to `backoffLimitPerIndex`; then the Job gets `Failed`, and
`Complete` once every index succeeded. Deleting a Job SIGTERMs (then SIGKILLs) its pods' process groups and
removes the objects it owns.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

PATH_RE = re.compile(
    r"^/(?:api/v1|apis/batch/v1)/namespaces/(?P<ns>[^/]+)/(?P<kind>jobs|configmaps|secrets|services|pods)"
    r"(?:/(?P<name>[^/]+))?(?:/(?P<sub>status|log))?$"
)
KINDS = {"jobs": "Job", "configmaps": "ConfigMap", "secrets": "Secret", "services": "Service", "pods": "Pod"}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Pod:
    """One pod of a Job: its object, its process and its log."""

    def __init__(self, obj: dict) -> None:
        self.obj = obj
        self.process: subprocess.Popen | None = None
        self.log = bytearray()
        self.done = threading.Event()


class KubeAPI:
    def __init__(self, image_paths: dict[str, Path] | None = None) -> None:
        self.image_paths = {k: Path(v) for k, v in (image_paths or {}).items()}
        self.objects: dict[tuple[str, str, str], dict] = {}  # (kind, namespace, name) -> object
        self.pods: dict[str, Pod] = {}
        self.lock = threading.RLock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                api._get(self)

            def do_POST(self) -> None:
                api._post(self)

            def do_DELETE(self) -> None:
                api._delete(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> KubeAPI:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        for pod in list(self.pods.values()):
            self._kill(pod)
        self.server.shutdown()
        self.server.server_close()

    def kubeconfig(self) -> dict:
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "test", "cluster": {"server": self.url}}],
            "users": [{"name": "test", "user": {}}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}],
            "current-context": "test",
        }

    def add(self, obj: dict, namespace: str = "default") -> None:
        """Store an object made out of band (the crisp-settings ConfigMap, the crisp-s3 Secret)."""
        obj.setdefault("metadata", {}).setdefault("namespace", namespace)
        with self.lock:
            self.objects[(obj["kind"], namespace, obj["metadata"]["name"])] = obj

    def jobs(self) -> list[dict]:
        return [o for (kind, _, _), o in self.objects.items() if kind == "Job"]

    # --- HTTP -------------------------------------------------------------------------------------------
    def _route(self, handler):
        url = urlsplit(handler.path)
        match = PATH_RE.match(url.path)
        return match, parse_qs(url.query)

    def _send(self, handler, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        handler.send_response(code)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _status(self, handler, code: int, reason: str, message: str) -> None:
        body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message}
        self._send(handler, code, {**body, "reason": reason, "code": code})

    def _post(self, handler) -> None:
        match, _ = self._route(handler)
        body = json.loads(handler.rfile.read(int(handler.headers.get("Content-Length", 0))))
        if not match or match["name"]:
            return self._status(handler, 404, "NotFound", handler.path)
        kind, ns = KINDS[match["kind"]], match["ns"]
        name = body["metadata"]["name"]
        with self.lock:
            if (kind, ns, name) in self.objects:
                return self._status(handler, 409, "AlreadyExists", f'{kind} "{name}" already exists')
            meta = body["metadata"]
            meta.update(namespace=ns, uid=str(uuid.uuid4()), creationTimestamp=_now())
            self.objects[(kind, ns, name)] = body
        if kind == "Job":
            body["status"] = {"active": 0}
            for index in range(int(body["spec"].get("completions", 1))):
                threading.Thread(target=self._run_index, args=(body, index), daemon=True).start()
        self._send(handler, 201, body)

    def _get(self, handler) -> None:
        match, query = self._route(handler)
        if not match:
            return self._status(handler, 404, "NotFound", handler.path)
        kind, ns, name = KINDS[match["kind"]], match["ns"], match["name"]
        if kind == "Pod" and match["sub"] == "log":
            return self._stream_log(handler, name, query.get("follow", [""])[0].lower() == "true")
        if kind == "Pod" and not name:
            wanted = dict(p.split("=", 1) for p in query.get("labelSelector", [""])[0].split(",") if p)
            with self.lock:
                items = [
                    p.obj
                    for p in self.pods.values()
                    if p.obj["metadata"]["namespace"] == ns
                    and wanted.items() <= p.obj["metadata"]["labels"].items()
                ]
            return self._send(handler, 200, {"kind": "PodList", "apiVersion": "v1", "items": items})
        with self.lock:
            obj = self.objects.get((kind, ns, name))
        if obj is None:
            return self._status(handler, 404, "NotFound", f'{kind.lower()}s "{name}" not found')
        self._send(handler, 200, obj)

    def _delete(self, handler) -> None:
        match, _ = self._route(handler)
        handler.rfile.read(int(handler.headers.get("Content-Length", 0)))
        kind, ns, name = KINDS[match["kind"]], match["ns"], match["name"]
        with self.lock:
            obj = self.objects.pop((kind, ns, name), None)
        if obj is None:
            return self._status(handler, 404, "NotFound", f'{kind.lower()}s "{name}" not found')
        uid = obj["metadata"]["uid"]
        for pod in [p for p in self.pods.values() if p.obj["metadata"].get("ownerUid") == uid]:
            self._kill(pod)
        with self.lock:
            for key, other in list(self.objects.items()):
                if any(ref.get("uid") == uid for ref in other["metadata"].get("ownerReferences", [])):
                    del self.objects[key]
        self._send(handler, 200, {"kind": "Status", "apiVersion": "v1", "status": "Success"})

    def _stream_log(self, handler, name: str, follow: bool) -> None:
        pod = self.pods.get(name)
        if pod is None:
            return self._status(handler, 404, "NotFound", f'pods "{name}" not found')
        handler.send_response(200)
        handler.send_header("Content-Type", "text/plain")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        sent = 0
        while True:
            finished = pod.done.is_set()
            data = bytes(pod.log[sent:])
            if data:
                handler.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                handler.wfile.flush()
                sent += len(data)
            if finished or not follow:
                break
            time.sleep(0.05)
        handler.wfile.write(b"0\r\n\r\n")

    # --- the kubelet ------------------------------------------------------------------------------------
    def _run_index(self, job: dict, index: int) -> None:
        retries = int(job["spec"].get("backoffLimitPerIndex", 0))
        for attempt in range(retries + 1):
            if (job["kind"], job["metadata"]["namespace"], job["metadata"]["name"]) not in self.objects:
                return  # deleted
            code = self._run_pod(job, index, attempt)
            if code == 0:
                return self._index_done(job, ok=True)
        self._index_done(job, ok=False)

    def _index_done(self, job: dict, ok: bool) -> None:
        with self.lock:
            status = job["status"]
            key = "succeeded" if ok else "failed"
            status[key] = status.get(key, 0) + 1
            if not ok and not status.get("conditions"):
                status["conditions"] = [
                    {
                        "type": "Failed",
                        "status": "True",
                        "reason": "FailedIndexes",
                        "message": "an index failed",
                    }
                ]
            elif status.get("succeeded", 0) == int(job["spec"].get("completions", 1)):
                status["conditions"] = [{"type": "Complete", "status": "True", "lastTransitionTime": _now()}]

    def _run_pod(self, job: dict, index: int, attempt: int) -> int:
        ns, job_name = job["metadata"]["namespace"], job["metadata"]["name"]
        template = json.loads(json.dumps(job["spec"]["template"]))
        name = f"{job_name}-{index}-{uuid.uuid4().hex[:5]}"
        labels = {**template.get("metadata", {}).get("labels", {})}
        labels.update(
            {"batch.kubernetes.io/job-name": job_name, "batch.kubernetes.io/job-completion-index": str(index)}
        )
        obj = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": ns,
                "labels": labels,
                "creationTimestamp": _now(),
                "ownerUid": job["metadata"]["uid"],
            },
            "spec": template["spec"],
            "status": {"phase": "Pending"},
        }
        pod = Pod(obj)
        with self.lock:
            self.pods[name] = pod
        spec, container = template["spec"], template["spec"]["containers"][0]
        env = {
            "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
            "JOB_COMPLETION_INDEX": str(index),
        }
        env["HOME"] = os.environ.get("HOME", "/root")
        for source in container.get("envFrom", []):
            ref = source.get("configMapRef") or source.get("secretRef")
            kind = "ConfigMap" if "configMapRef" in source else "Secret"
            stored = self._wait_for(kind, ns, ref["name"], optional=ref.get("optional", False))
            data = (stored or {}).get("data", {})
            env.update({k: base64.b64decode(v).decode() if kind == "Secret" else v for k, v in data.items()})
        for var in container.get("env", []):
            if "value" in var:
                env[var["name"]] = var["value"]
            elif path := var.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath"):
                label = re.fullmatch(r"metadata\.labels\['(.+)'\]", path)
                env[var["name"]] = labels.get(label[1], "") if label else name
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for mount in container.get("volumeMounts", []):
            source = volumes[mount["name"]].get("configMap")
            if source:
                stored = self._wait_for("ConfigMap", ns, source["name"])
                target = Path(mount["mountPath"])
                target.mkdir(parents=True, exist_ok=True)
                for key, value in (stored or {}).get("data", {}).items():
                    (target / key).write_text(value)
        expand = lambda text: re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m[1], m[0]), text)  # noqa: E731
        command = [expand(part) for part in container.get("command", []) + container.get("args", [])]
        workdir = self._local(container.get("workingDir", "/"))
        if (job["kind"], ns, job_name) not in self.objects:
            return 1  # deleted while the pod was being set up
        pod.process = subprocess.Popen(
            command,
            cwd=workdir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        obj["status"] = {"phase": "Running", "startTime": _now()}
        for chunk in iter(lambda: pod.process.stdout.read1(4096), b""):
            pod.log.extend(chunk)
        code = pod.process.wait()
        obj["status"] = {"phase": "Succeeded" if code == 0 else "Failed"}
        pod.done.set()
        return code

    def _wait_for(self, kind: str, ns: str, name: str, optional: bool = False, wait_s: float = 20.0):
        """A kubelet waits for a pod's ConfigMaps and Secrets to exist before it starts the container."""
        deadline = time.monotonic() + wait_s
        while (
            (obj := self.objects.get((kind, ns, name))) is None
            and time.monotonic() < deadline
            and not optional
        ):
            time.sleep(0.05)
        return obj

    def _local(self, path: str) -> str:
        for image_path, local in self.image_paths.items():
            if path == image_path or path.startswith(image_path.rstrip("/") + "/"):
                return str(local / os.path.relpath(path, image_path))
        return path

    def _kill(self, pod: Pod) -> None:
        if pod.process is None or pod.process.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(pod.process.pid, sig)
            except ProcessLookupError:
                return
            try:
                pod.process.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue
