"""Effective settings: embedded defaults, then a YAML file, then `CRISP_*` environment variables.

In: an optional YAML path (`--config` or CRISP_CONFIG) and the environment (or a given mapping). Out: a
frozen `Settings` whose sections are the typed configs owned by each component (storage here; ingest
(crawl + clean + split), pairs, gates (the promotion policy), launch (where DAG training runs) in their own
modules). Built on pydantic-settings: a YAML file source
under an environment source, both read only what `load_settings` hands them.

One environment convention: the `CRISP_` prefix and `__` for nesting, e.g. `CRISP_ROOT=s3://bucket/crisp`,
`CRISP_S3__ENDPOINT_URL=http://127.0.0.1:9000`, `CRISP_INGEST__CRAWL__PER_HOST_CONCURRENCY=4`. Values are
parsed as YAML scalars and flow collections (`4`, `true`, `[a, b]`); dates stay strings
(`[2026-11-20]` is a list of one partition name) and a string setting keeps its text as given.

Failures: an unknown key in the file or under a known section of the environment
(`ingest.crawl.per_hst_concurrency`, `CRISP_S3__ENDPONT_URL`) or a bad value raises `ConfigError` naming
the dotted key, where it came from and the valid names. A `CRISP_*` variable that names no top-level
setting (`CRISP_DASK_WORKERS`) is ignored with one warning listing them all, except the variables in
`NOT_SETTINGS`, which their users read directly.
"""

from __future__ import annotations

import logging
import os
import types
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from pipeline.ingest.config import IngestConfig
from pipeline.pairs.config import PairsConfig
from schemas.errors import InputError
from training.fit.launcher import LaunchConfig
from training.gates.gan_gates import GanGatePolicy
from training.gates.matte_gates import MatteGatePolicy
from training.gates.policy import GatePolicy, RestoreGatePolicy
from training.gates.quality_gates import QualityGatePolicy
from training.gates.vsr_gates import VsrGatePolicy

log = logging.getLogger(__name__)

ENV_PREFIX = "CRISP_"
ENV_NESTED_DELIMITER = "__"
# CRISP_* variables that are not settings: each is read directly by the code named beside it.
NOT_SETTINGS = frozenset(
    {
        "CRISP_CONFIG",  # the settings file itself (load_settings)
        "CRISP_SHARED_DATA",  # pipeline/reference_data.py
        "CRISP_FEED_TEMPLATE",  # dags/product_images_ingest.py
        "CRISP_SR_TRAIN_SCHEDULE",  # dags/sr_train.py
        "CRISP_QUALITY_TRAIN_SCHEDULE",  # dags/quality_train.py
        "CRISP_MATTE_TRAIN_SCHEDULE",  # dags/matte_train.py
        "CRISP_VSR_TRAIN_SCHEDULE",  # dags/vsr_train.py
        "CRISP_TEST_TRAIN_THREADS",  # tests/support/checkpoints.py
    }
)
NOT_SETTINGS_PREFIXES = ("CRISP_BENCH_", "CRISP_STACK_")  # bench/*.py configs; infra/stack.env wiring


class ConfigError(InputError, ValueError):
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


# The sources of the `Settings()` call in progress (set by load_settings; a ContextVar keeps threads apart).
_SOURCES: ContextVar[tuple[PydanticBaseSettingsSource, ...] | None] = ContextVar(
    "crisp_sources", default=None
)


class GateSettings(BaseModel):
    """The promotion gates of each model kind: policy of the deployment, never of a trigger."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    sr: GatePolicy = Field(default_factory=GatePolicy)  # super-resolution (training/gates/policy.py)
    quality: QualityGatePolicy = Field(default_factory=QualityGatePolicy)  # training/gates/quality_gates.py
    restore: RestoreGatePolicy = Field(
        default_factory=RestoreGatePolicy
    )  # restorers, scale 1 (same file as sr)
    sr_gan: GanGatePolicy = Field(default_factory=GanGatePolicy)  # GAN-fine-tuned x4 (same file as sr)
    matte: MatteGatePolicy = Field(default_factory=MatteGatePolicy)  # background removal (matte_gates.py)
    vsr: VsrGatePolicy = Field(default_factory=VsrGatePolicy)  # video super-resolution (vsr_gates.py)


class Settings(BaseSettings):
    """Build with `load_settings`; a bare `Settings()` reads the process environment only (no file)."""

    model_config = SettingsConfigDict(
        extra="forbid",
        frozen=True,
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_NESTED_DELIMITER,
        case_sensitive=False,
    )
    root: str = "file://./data"  # every dataset, checkpoint and registry artifact lives under it
    s3: S3Settings = Field(default_factory=S3Settings)
    dask_scheduler: str | None = None  # None = LocalCluster sized to the machine
    mlflow_tracking_uri: str | None = None  # None = SQLite under the root
    ingest: IngestConfig = Field(default_factory=IngestConfig)  # crawl, clean, split, shards, workers
    pairs: PairsConfig = Field(default_factory=PairsConfig)  # recipes, tiles, variants, Dask workers
    gates: GateSettings = Field(default_factory=lambda: GateSettings())  # promotion policy per model kind
    launch: LaunchConfig = Field(default_factory=LaunchConfig)  # where the DAGs' training runs

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Highest priority first: keyword arguments, then the environment, then the YAML file.
        sources = _SOURCES.get() or (CrispEnvSource(settings_cls, os.environ),)
        return (init_settings, *sources)

    def storage(self):
        from pipeline.storage import Storage

        options = self.s3.storage_options() if self.root.startswith("s3://") else {}
        return Storage(self.root, options)

    def registry(self, policy: str = "sr"):
        """The model registry these settings name, carrying the gate policy promotion re-applies."""
        from training.registry.versions import RegistryConfig

        return RegistryConfig(
            root=self.root,
            tracking_uri=self.mlflow_tracking_uri,
            policy=getattr(self.gates, policy),
            experiment=f"crisp-{policy}",  # one MLflow experiment per model kind
        )


# -- values: YAML without timestamps, and strings kept for string settings -------------------------------


class _YamlLoader(yaml.SafeLoader):
    """yaml.SafeLoader except that dates and times stay strings (partitions are named by their date)."""


_YamlLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _members(annotation: Any) -> tuple[Any, ...]:
    """The non-None members of a union (or the annotation itself), Annotated[...] unwrapped."""
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) in (Union, types.UnionType):
        return tuple(m for arg in get_args(annotation) if arg is not type(None) for m in _members(arg))
    return (annotation,)


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _child(annotation: Any, key: str) -> Any:
    """The annotation of `key` inside `annotation` (a model's field, a mapping's values); Any if unknown."""
    for member in _members(annotation):
        if _is_model(member):
            field = member.model_fields.get(key)
            if field is not None:
                return field.annotation
        elif get_origin(member) in (dict, Mapping):
            args = get_args(member)
            return args[1] if len(args) == 2 else Any
    return Any


def _is_string(annotation: Any) -> bool:
    def stringy(member: Any) -> bool:
        if get_origin(member) is Literal:
            return all(isinstance(v, str) for v in get_args(member))
        return member in (str, SecretStr)

    return all(stringy(m) for m in _members(annotation))


def parse_value(raw: str, annotation: Any = Any) -> Any:
    """An environment value as YAML (`4`, `true`, `[a, b]`, `null`; dates stay strings); empty = None.
    For a string setting, a value that YAML reads as a number, bool or collection keeps its text."""
    if not raw.strip():
        return None
    try:
        value = yaml.load(raw, Loader=_YamlLoader)
    except yaml.YAMLError:
        return raw
    if _is_string(annotation) and value is not None and not isinstance(value, str):
        return raw
    return value


# -- sources ---------------------------------------------------------------------------------------------


def _is_setting_variable(name: str) -> bool:
    upper = name.upper()
    return (
        upper.startswith(ENV_PREFIX)
        and upper not in NOT_SETTINGS
        and not upper.startswith(NOT_SETTINGS_PREFIXES)
    )


class CrispEnvSource(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping, values parsed with `parse_value`.

    `origins` maps each key path to the variable that set it; `unrelated` lists the CRISP_* variables
    that name no top-level setting (load_settings warns about them)."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = {name: value for name, value in environ.items() if _is_setting_variable(name)}
        super().__init__(settings_cls)  # prefix, delimiter and case from Settings.model_config
        fields = settings_cls.model_fields
        self.origins: dict[tuple[str, ...], str] = {}
        self.unrelated: list[str] = []
        for name in sorted(self._environ, key=self._path):  # a section's variable before its keys'
            path = tuple(self._path(name))
            if path[0] in fields:
                self.origins[path] = name
            else:
                self.unrelated.append(name)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {self._apply_case_sensitive(name): value for name, value in self._environ.items()}

    def _path(self, name: str) -> list[str]:
        return self._apply_case_sensitive(name)[self.env_prefix_len :].split(self.env_nested_delimiter)

    def __call__(self) -> dict[str, Any]:
        tree: dict[str, Any] = {}
        for path, name in self.origins.items():  # CRISP_S3 (a whole mapping) before CRISP_S3__KEY
            node, annotation = tree, self.settings_cls
            for depth, part in enumerate(path[:-1]):
                annotation = _child(annotation, part)
                node = node.setdefault(part, {})
                if not isinstance(node, dict):
                    parent = ENV_PREFIX + ENV_NESTED_DELIMITER.join(path[: depth + 1]).upper()
                    raise ConfigError(f"{name} sets a key inside {parent}, which is not a section")
            node[path[-1]] = parse_value(self._environ[name], _child(annotation, path[-1]))
        return tree


class CrispYamlSource(YamlConfigSettingsSource):
    """pydantic-settings' YAML file source; dates stay strings, and a bad file is a ConfigError."""

    def _read_file(self, file_path) -> dict[str, Any]:
        try:
            data = yaml.load(file_path.read_text(encoding="utf-8"), Loader=_YamlLoader)
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {file_path} is not valid YAML: {exc}") from None
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise ConfigError(
                f"config file {file_path} must hold a mapping of settings, not {type(data).__name__}"
            )
        return data


# -- errors ----------------------------------------------------------------------------------------------


def _suggestion(name: str) -> str:
    """`CRISP_S3_ENDPOINT_URL` -> ` (did you mean CRISP_S3__ENDPOINT_URL?)` for a section's key."""
    rest = name[len(ENV_PREFIX) :].upper()
    for section, field in Settings.model_fields.items():
        head = f"{section.upper()}_"
        if _is_model(field.annotation) and rest.startswith(head) and not rest.startswith(head + "_"):
            return f" (did you mean {ENV_PREFIX}{section.upper()}{ENV_NESTED_DELIMITER}{rest[len(head) :]}?)"
    return ""


def _warn_unrelated(names: list[str]) -> None:
    if names:
        listed = ", ".join(name + _suggestion(name) for name in names)
        log.warning(
            "ignoring %s: no such setting (settings are CRISP_<KEY>, `__` between levels, "
            "e.g. CRISP_S3__ENDPOINT_URL; `crisp config` shows them)",
            listed,
        )


def _has_path(data: Any, loc: tuple[Any, ...]) -> bool:
    for part in loc:
        if not isinstance(data, dict) or part not in data:
            return False
        data = data[part]
    return True


def _explain(
    exc: ValidationError, env: CrispEnvSource, yaml_path: Path | None, yaml_data: dict
) -> ConfigError:
    lines = []
    for err in exc.errors():
        loc = tuple(str(p) for p in err["loc"])
        key = ".".join(loc)
        origins = [
            n for path, n in env.origins.items() if loc[: len(path)] == path or path[: len(loc)] == loc
        ]
        in_file = yaml_path is not None and loc and _has_path(yaml_data, loc[:1])
        if in_file and (not origins or _has_path(yaml_data, loc)):
            origins.append(str(yaml_path))
        source = ", ".join(origins) or "defaults"
        if err["type"] == "extra_forbidden":
            parent: Any = Settings
            for part in loc[:-1]:
                parent = _child(parent, part)
            valid = next((sorted(m.model_fields) for m in _members(parent) if _is_model(m)), [])
            where = f" under {'.'.join(loc[:-1])!r}" if loc[:-1] else ""
            lines.append(
                f"unknown setting {key!r} (from {source}); valid keys{where}: {', '.join(valid)} "
                "(run `crisp config` to see them all)"
            )
        else:
            got = f"got {err.get('input')!r}, " if err["type"] != "missing" else ""
            lines.append(f"setting {key!r}: {err['msg']} ({got}from {source})")
    return ConfigError("invalid configuration:\n  " + "\n  ".join(lines))


def load_settings(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Defaults < YAML file < environment (`environ`, else os.environ). Raises ConfigError naming any bad key."""
    environ = dict(os.environ if environ is None else environ)
    path = path or environ.get("CRISP_CONFIG") or None
    yaml_path = Path(path) if path else None
    if yaml_path is not None and not yaml_path.is_file():
        raise ConfigError(f"config file {yaml_path} does not exist (from --config / CRISP_CONFIG)")
    env = CrispEnvSource(Settings, environ)
    file = CrispYamlSource(Settings, yaml_file=yaml_path)
    _warn_unrelated(env.unrelated)
    token = _SOURCES.set((env, file))
    try:
        return Settings()
    except ValidationError as exc:
        raise _explain(exc, env, yaml_path, file.yaml_data) from None
    finally:
        _SOURCES.reset(token)


def masked_dump(settings: Settings) -> dict[str, Any]:
    """Settings as plain data with secrets masked (SecretStr dumps as '**********')."""
    return settings.model_dump(mode="json")
