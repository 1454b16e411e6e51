"""Register validated checkpoints in the MLflow Model Registry, move `@champion`, roll back, load.

In: a checkpoint URI and its `Verdict` (training/gates/validate.py), a registered-model name, a `RegistryConfig`.
Out: version numbers; `load_model("models:/<name>@<alias>" | "models:/<name>/<version>" | checkpoint path)`
returns `(module, CheckpointMeta)` loaded through training/gates/safe_load.py.

Each version is the MLflow pyfunc folder of training/registry/package.py (checkpoint, exported model, verdict,
meta; nothing pickled; the serving code and signature of its task, training/tasks), tagged with its task, per-set metrics, dataset partitions and manifest hash, recipe, arch,
scale, code version, checkpoint sha256 and a short verdict summary (the full verdict is the version's
`verdict.json` artifact and the run's). Aliases replace stages (MLflow 3): `register` points
`@challenger` at the new version; `promote` moves `@champion` only when the version's recorded verdict
passes under the *configured* gate policy (`RegistryConfig.policy`, from the settings `gates.sr.*`:
training/gates/policy.py re-applies every threshold to the recorded measurements) and was measured against the
current champion; else `PromotionRefused`, `@champion` untouched. `promote(..., force_reason=...)` is a
person's override: it moves the alias anyway and records who, when and why on the version. The previous
champion goes onto the `crisp.champion_history` tag of the registered model; `rollback` pops it.
`resolve_champion` loads the model a candidate is validated against.
One writer at a time is assumed (the DAG serialises promotions).

Embedded default: SQLite `<root>/mlflow/mlflow.db` with artifacts in `<root>/mlflow/artifacts` for a
`file://` root; for an `s3://` root the database lives in `local_dir` and the artifacts under the root.
MLflow is imported lazily (about 4 s) and used through `MlflowClient` only: its global URIs never change.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import logging
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny
from torch import nn

from pipeline.quality.model_file import DEFAULT_LOCAL_DIR, registry_tracking_uri
from pipeline.storage import normalize_root, read_uri
from schemas.errors import CrispError, InputError
from training.gates.policy import GatePolicy, ThresholdPolicy
from training.gates.safe_load import safe_load
from training.gates.validate import Champion
from training.gates.verdict import ChampionRef, CheckpointMeta, Verdict
from training.registry.package import package_model

CHAMPION, CHALLENGER = "champion", "challenger"
_TAG_LIMIT = 4000  # below the smallest tag-value limit of MLflow stores (5,000 on SQL stores)
logger = logging.getLogger(__name__)
HISTORY_TAG = "crisp.champion_history"


class UnknownModelError(InputError, LookupError):
    """A model URI names a registered model, alias or version that does not exist."""


class PromotionRefused(CrispError, RuntimeError):
    """`@champion` was not moved; the message says why."""


class RegistryConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    root: str = "file://./data"  # the storage root (Settings.root)
    tracking_uri: str | None = None  # a server (http://...) or sqlite URI; None = embedded SQLite
    local_dir: Path = DEFAULT_LOCAL_DIR  # SQLite home when the root is not a local folder
    experiment: str = "crisp-sr"
    # promotion re-applies it: settings gates.<task> (GatePolicy for SR, QualityGatePolicy for quality)
    policy: SerializeAsAny[ThresholdPolicy] = Field(default_factory=GatePolicy)

    def resolved_tracking_uri(self) -> str:
        """The store (pipeline.quality.model_file.registry_tracking_uri: the rule the data side reads with),
        its SQLite folder created: this side writes."""
        uri = registry_tracking_uri(self.root, self.tracking_uri, self.local_dir)
        if uri.startswith("sqlite:///") and not self.tracking_uri:
            Path(uri[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
        return uri

    def artifact_location(self) -> str | None:
        if self.tracking_uri and not self.tracking_uri.startswith("sqlite"):
            return None  # a tracking server chooses its own artifact store
        root = normalize_root(self.root)
        return f"{root[len('file://') :] if root.startswith('file://') else root}/mlflow/artifacts"


class VersionInfo(BaseModel):
    version: int
    aliases: list[str]
    passed: bool | None
    arch: str | None
    scale: int | None
    metrics: dict[str, float]
    checkpoint: str | None
    created_ms: int


def mlflow_client(config: RegistryConfig) -> Any:
    """An MlflowClient on the configured store (no fluent API: mlflow's global URIs stay untouched)."""
    from mlflow import MlflowClient

    uri = config.resolved_tracking_uri()
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _tags(
    meta: CheckpointMeta, verdict: Verdict, uri: str, sha: str, extra: Mapping[str, str]
) -> dict[str, str]:
    tags = {
        "crisp.arch": meta.arch,
        "crisp.task": meta.task,
        "crisp.arch_kwargs": json.dumps(meta.arch_kwargs, sort_keys=True),
        "crisp.recipe": str(meta.recipe),
        "crisp.pair_partitions": json.dumps(meta.pair_partitions),
        "crisp.data_manifest_hash": json.dumps(meta.data_manifest_hash),
        "crisp.schema_version": str(meta.schema_version),
        "crisp.code_version": str(meta.code_version),
        "crisp.checkpoint": uri,
        "crisp.checkpoint_sha256": sha,
        "crisp.verdict_passed": str(verdict.passed).lower(),
        "crisp.verdict_summary": verdict.summary()[:_TAG_LIMIT],  # the whole verdict is an artifact
    }
    if meta.scale is not None:  # an upscaler's; a scorer has none
        tags["crisp.scale"] = str(meta.scale)
    for score in verdict.scores:
        tags[f"crisp.metric.{score.name}.psnr_y"] = f"{score.psnr_y:.4f}"
        tags[f"crisp.metric.{score.name}.ssim_y"] = f"{score.ssim_y:.5f}"
        tags[f"crisp.metric.{score.name}.bicubic_psnr_y"] = f"{score.bicubic_psnr_y:.4f}"
    for name, value in verdict.metrics.items():  # a scorer's headline figures (srcc, pair_accuracy)
        if "/" not in name and value == value:  # per-family figures and NaNs stay in the verdict artifact
            tags[f"crisp.metric.{name}"] = f"{value:.4f}"
    return {**tags, **{str(k): str(v) for k, v in extra.items()}}


def experiment_id(client: Any, config: RegistryConfig) -> str:
    experiment = client.get_experiment_by_name(config.experiment)
    if experiment is not None:
        return experiment.experiment_id
    return client.create_experiment(config.experiment, artifact_location=config.artifact_location())


def register(
    checkpoint_uri: str,
    verdict: Verdict,
    name: str,
    tags: Mapping[str, str] | None = None,
    config: RegistryConfig | None = None,
    storage_options: Mapping[str, Any] | None = None,
    *,
    run_id: str | None = None,
    data: bytes | None = None,
    exported: Any = None,
    task: str = "sr",
) -> int:
    """Log the checkpoint as a new version of `name`, point `@challenger` at it, return the version.

    `run_id`: the MLflow run of the training (training/registry/tracking.py); the model is logged into it, so the
    version links to the run's params, metrics and artifacts. None: a run of its own is created.
    `data` / `exported`: the checkpoint bytes and the export the verdict checked (training/gates/validate.py
    `validate`), so nothing is read or exported a second time. A failing verdict is registered too (the
    record of what was tried); only `promote` checks it against the policy."""
    config = config or RegistryConfig()
    uri = str(checkpoint_uri)
    data = read_uri(uri, storage_options) if data is None else data
    sha = hashlib.sha256(data).hexdigest()
    if verdict.checkpoint_sha256 and verdict.checkpoint_sha256 != sha:
        raise ValueError(
            f"the verdict describes another file (sha256 {verdict.checkpoint_sha256[:12]}...) than {uri}"
        )
    module, meta = safe_load(uri, storage_options=storage_options, data=data)  # rejected before any write
    client = mlflow_client(config)
    with tempfile.TemporaryDirectory(prefix="crisp-register-") as tmp:
        model_dir = package_model(
            Path(tmp), uri, data, module, meta, verdict, storage_options, exported, task
        )
        if run_id is None:
            run_id = client.create_run(experiment_id(client, config), run_name=f"register-{name}").info.run_id
            for key, value in (("arch", meta.arch), ("scale", meta.scale)):
                client.log_param(run_id, key, value)
            own_run = True
        else:
            own_run = False
        for score in verdict.scores:
            client.log_metric(run_id, f"gate.{score.name.replace(':', '.')}.psnr_y", score.psnr_y)
        artifact_path = f"model-v{_next_version(client, name)}"
        client.log_artifacts(run_id, str(model_dir), artifact_path)
        if own_run:
            client.set_terminated(run_id)
    if not client.search_registered_models(filter_string=f"name = '{name}'"):
        client.create_registered_model(name)
    artifact_uri = client.get_run(run_id).info.artifact_uri
    version = client.create_model_version(
        name,
        source=f"{artifact_uri}/{artifact_path}",
        run_id=run_id,
        tags=_tags(meta, verdict, uri, sha, {"crisp.task": task, **(tags or {})}),
    )
    client.set_registered_model_alias(name, CHALLENGER, version.version)
    logger.info("registered %s v%s as @%s (verdict %s)", name, version.version, CHALLENGER, verdict.summary())
    return int(version.version)


def _next_version(client: Any, name: str) -> int:
    """The number the next version of `name` will get (names the artifact folder; one writer assumed)."""
    versions = client.search_model_versions(f"name = '{name}'")
    return 1 + max((int(v.version) for v in versions), default=0)


def _registered(client: Any, name: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_registered_model(name)
    except MlflowException:
        known = sorted(m.name for m in client.search_registered_models())
        raise UnknownModelError(f"no registered model {name!r}; registered models: {known}") from None


def _version(client: Any, name: str, version: int | str) -> Any:
    from mlflow.exceptions import MlflowException

    _registered(client, name)
    try:
        return client.get_model_version(name, str(version))
    except MlflowException:
        raise UnknownModelError(f"model {name!r} has no version {version}") from None


def _champion_version(client: Any, name: str) -> int | None:
    aliases = _registered(client, name).aliases or {}
    return int(aliases[CHAMPION]) if CHAMPION in aliases else None


def _download(client: Any, name: str, number: int, tmp: str, path: str = "") -> Path:
    """The version's model folder (or one `path` inside it) downloaded under `tmp`."""
    import mlflow

    source = client.get_model_version_download_uri(name, str(number))
    uri = f"{source.rstrip('/')}/{path}" if path else source
    # the client's server, not mlflow's global URI: `mlflow-artifacts:` paths of a tracking server would
    # otherwise be looked up in a local ./mlruns
    where = client.tracking_uri
    return Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=uri, dst_path=tmp, tracking_uri=where, registry_uri=where
        )
    )


def recorded_verdict(name: str, version: int, config: RegistryConfig | None = None) -> Verdict:
    """The full verdict stored with a version (its `verdict.json` artifact)."""
    client = mlflow_client(config or RegistryConfig())
    _version(client, name, version)
    return _recorded_verdict(client, name, version)


def _recorded_verdict(client: Any, name: str, version: int) -> Verdict:
    from mlflow.exceptions import MlflowException

    with tempfile.TemporaryDirectory(prefix="crisp-verdict-") as tmp:
        try:  # only the verdict, not the whole model folder (checkpoint, export)
            path = _download(client, name, version, tmp, "artifacts/verdict.json")
        except (MlflowException, OSError):
            raise PromotionRefused(
                f"{name} v{version} has no recorded verdict; register it with a verdict"
            ) from None
        return Verdict.model_validate_json(path.read_text())


def promote(
    name: str,
    version: int,
    config: RegistryConfig | None = None,
    *,
    force_reason: str | None = None,
    actor: str | None = None,
) -> int | None:
    """Point `@champion` at `version` if its verdict passes under `config.policy` and was measured against
    the current champion; return the previous champion version.

    `force_reason` (a person's override, `crisp registry promote --force --reason`): promote without those
    checks and record `crisp.forced_by` (`actor`, default the OS user), `crisp.forced_reason` and
    `crisp.forced_at` on the version."""
    config = config or RegistryConfig()
    client = mlflow_client(config)
    _version(client, name, version)
    current = _champion_version(client, name)
    if current == int(version):
        return current
    if force_reason is not None:
        if not force_reason.strip():
            raise PromotionRefused("--force needs a --reason saying why the gates are overridden")
        forced = {
            "crisp.forced_by": actor or getpass.getuser(),
            "crisp.forced_reason": force_reason.strip()[:_TAG_LIMIT],
            "crisp.forced_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        for key, value in forced.items():
            client.set_model_version_tag(name, str(version), key, value)
        logger.warning(
            "%s v%s forced to @%s by %s: %s", name, version, CHAMPION, forced["crisp.forced_by"], force_reason
        )
    else:
        verdict = _recorded_verdict(client, name, version)
        problems = config.policy.failures(verdict)
        if problems:
            raise PromotionRefused(f"{name} v{version} does not pass the gate policy: {'; '.join(problems)}")
        compared = verdict.champion.version if verdict.champion and verdict.champion.found else None
        if current is not None and compared != current:
            raise PromotionRefused(
                f"{name} v{version} was validated against champion {compared}, but the champion is now "
                f"v{current}; re-validate with --champion models:/{name}@{CHAMPION}"
            )
    history = json.loads(_registered(client, name).tags.get(HISTORY_TAG, "[]"))
    if current is not None:
        history.append(current)
    client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history))
    client.set_registered_model_alias(name, CHAMPION, str(version))
    logger.info("%s@%s -> v%s (previous: %s)", name, CHAMPION, version, current)
    return current


def resolve_champion(
    uri: str | None, config: RegistryConfig | None = None, storage_options: Mapping[str, Any] | None = None
) -> Champion | None:
    """The model a candidate is validated against: `models:/<name>@champion` (none registered yet is a
    `Champion` with no module and a note) or a checkpoint path; None for no URI."""
    if not uri:
        return None
    try:
        module, meta = load_model(uri, config, storage_options)
    except UnknownModelError as exc:
        if not str(uri).startswith("models:/"):
            raise
        return Champion(None, ChampionRef(uri=uri, found=False, note=f"no champion yet: {exc}"))
    return Champion(module, ChampionRef(uri=uri, found=True, version=meta.registry_version, scale=meta.scale))


def rollback(name: str, config: RegistryConfig | None = None) -> int:
    """Restore the champion before the current one; return the restored version."""
    client = mlflow_client(config or RegistryConfig())
    history = json.loads(_registered(client, name).tags.get(HISTORY_TAG, "[]"))
    if not history:
        raise PromotionRefused(f"{name} has no previous champion to roll back to")
    previous = int(history.pop())
    _version(client, name, previous)
    client.set_registered_model_alias(name, CHAMPION, str(previous))
    client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history))
    return previous


def _version_info(record: Any, aliases: list[str]) -> VersionInfo:
    tags = record.tags or {}
    prefix = "crisp.metric."
    passed = tags.get("crisp.verdict_passed")
    return VersionInfo(
        version=int(record.version),
        aliases=sorted(aliases),
        passed=None if passed is None else passed == "true",
        arch=tags.get("crisp.arch"),
        scale=int(tags["crisp.scale"]) if "crisp.scale" in tags else None,
        metrics={k[len(prefix) :]: float(v) for k, v in tags.items() if k.startswith(prefix)},
        checkpoint=tags.get("crisp.checkpoint"),
        created_ms=int(record.creation_timestamp or 0),
    )


def list_versions(name: str, config: RegistryConfig | None = None) -> list[VersionInfo]:
    """Every version of `name`, newest first, with aliases, verdict and headline metrics."""
    client = mlflow_client(config or RegistryConfig())
    by_version: dict[int, list[str]] = {}
    for alias, version in (_registered(client, name).aliases or {}).items():
        by_version.setdefault(int(version), []).append(alias)
    records = client.search_model_versions(f"name = '{name}'")
    infos = [_version_info(r, by_version.get(int(r.version), [])) for r in records]
    return sorted(infos, key=lambda info: -info.version)


def parse_model_uri(uri: str) -> tuple[str, str | None, int | None]:
    """'models:/name@alias' -> (name, alias, None); 'models:/name/3' -> (name, None, 3)."""
    body = uri[len("models:/") :] if uri.startswith("models:/") else ""
    if "@" in body and body.split("@", 1)[0] and body.split("@", 1)[1]:
        name, alias = body.split("@", 1)
        return name, alias, None
    name, _, version = body.rpartition("/")
    if name and version.isdigit():
        return name, None, int(version)
    raise ValueError(f"malformed model URI {uri!r}: use models:/<name>@<alias> or models:/<name>/<version>")


def load_model(
    uri: str, config: RegistryConfig | None = None, storage_options: Mapping[str, Any] | None = None
) -> tuple[nn.Module, CheckpointMeta]:
    """The model behind a registry URI or a checkpoint path/URI, loaded safely (eval mode, EMA weights)."""
    uri = str(uri)
    if not uri.startswith("models:/"):
        return safe_load(uri, storage_options=storage_options)
    name, alias, number = parse_model_uri(uri)
    client = mlflow_client(config or RegistryConfig())
    if alias is not None:
        aliases = _registered(client, name).aliases or {}
        if alias not in aliases:
            raise UnknownModelError(f"model {name!r} has no alias @{alias}; its aliases: {sorted(aliases)}")
        number = int(aliases[alias])
    record = _version(client, name, number)
    with tempfile.TemporaryDirectory(prefix="crisp-load-") as tmp:
        local = _download(client, name, number, tmp)
        found = sorted(local.rglob("checkpoint.*"))
        checkpoint = next((p for p in found if p.suffix in (".ckpt", ".safetensors")), None)
        if checkpoint is None:
            raise UnknownModelError(f"{name} v{number} has no checkpoint artifact")
        expected = (record.tags or {}).get("crisp.checkpoint_sha256")
        if expected and hashlib.sha256(checkpoint.read_bytes()).hexdigest() != expected:
            raise ValueError(f"{name} v{number}: the stored checkpoint does not match its recorded sha256")
        module, meta = safe_load(str(checkpoint))
    identity = {"source": f"models:/{name}/{number}", "registry_name": name, "registry_version": number}
    return module, meta.model_copy(update=identity)
