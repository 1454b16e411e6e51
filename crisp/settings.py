"""Effective settings: embedded defaults, then a YAML file, then `CRISP_*` environment variables.

In: an optional YAML path (`--config` or CRISP_CONFIG) and the environment. Out: a frozen `Settings` whose
sections are the typed configs owned by each component (storage here; ingest (crawl + clean + split), pairs,
train, registry in their own modules). Unknown keys fail with the dotted key and the allowed names.
Environment overrides use `__` for nesting: `CRISP_ROOT=s3://bucket/crisp`,
`CRISP_S3__ENDPOINT_URL=http://127.0.0.1:9000`, `CRISP_INGEST__CRAWL__PER_HOST_CONCURRENCY=4`. Values are
parsed as YAML scalars (numbers, booleans, lists).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from pipeline.ingest.config import IngestConfig
from pipeline.pairs.config import PairsConfig

ENV_PREFIX = "CRISP_"
_NOT_SETTINGS = {"CRISP_CONFIG", "CRISP_SHARED_DATA", "CRISP_FEED_TEMPLATE"}  # read by their users directly


class ConfigError(ValueError):
    """The configuration is invalid; the message names the key and the fix."""


class S3Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    endpoint_url: str | None = None  # MinIO / test server; None = AWS
    key: SecretStr | None = None
    secret: SecretStr | None = None
    region: str | None = None

    def storage_options(self) -> dict[str, Any]:
        opts: dict[str, Any] = {}
        if self.key and self.secret:
            opts.update(key=self.key.get_secret_value(), secret=self.secret.get_secret_value())
        client: dict[str, Any] = {}
        if self.endpoint_url:
            client["endpoint_url"] = self.endpoint_url
        if self.region:
            client["region_name"] = self.region
        if client:
            opts["client_kwargs"] = client
        return opts


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    root: str = "file://./data"  # every dataset, checkpoint and registry artifact lives under it
    s3: S3Settings = Field(default_factory=S3Settings)
    dask_scheduler: str | None = None  # None = LocalCluster sized to the machine
    mlflow_tracking_uri: str | None = None  # None = SQLite under the root
    ingest: IngestConfig = Field(default_factory=IngestConfig)  # crawl, clean, split, shards, workers
    pairs: PairsConfig = Field(default_factory=PairsConfig)  # recipes, tiles, variants, Dask workers

    def storage(self):
        from pipeline.storage import Storage

        options = self.s3.storage_options() if self.root.startswith("s3://") else {}
        return Storage(self.root, options)


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _env_overrides(environ: dict[str, str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or name in _NOT_SETTINGS:
            continue
        path = name[len(ENV_PREFIX) :].lower().split("__")
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = yaml.safe_load(raw) if raw.strip() else None
    return tree


def _explain(exc: ValidationError, source: str) -> ConfigError:
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            lines.append(f"unknown setting {key!r} (from {source}); run `crisp config` to see valid keys")
        else:
            lines.append(f"setting {key!r}: {err['msg']} (got {err.get('input')!r}, from {source})")
    return ConfigError("invalid configuration:\n  " + "\n  ".join(lines))


def load_settings(path: str | Path | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Defaults < YAML file < environment. Raises ConfigError naming any bad key."""
    environ = dict(os.environ if environ is None else environ)
    path = path or environ.get("CRISP_CONFIG")
    data: dict[str, Any] = {}
    source = "defaults"
    if path:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {p} does not exist (from --config / CRISP_CONFIG)")
        try:
            loaded = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {p} is not valid YAML: {exc}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {p} must hold a mapping of settings, not {type(loaded).__name__}")
        data, source = loaded, str(p)
    env = _env_overrides(environ)
    if env:
        source = f"{source} + CRISP_* environment"
    try:
        return Settings.model_validate(_deep_merge(data, env))
    except ValidationError as exc:
        raise _explain(exc, source) from None


def masked_dump(settings: Settings) -> dict[str, Any]:
    """Settings as plain data with secrets masked (SecretStr dumps as '**********')."""
    return settings.model_dump(mode="json")
