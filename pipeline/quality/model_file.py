"""Find the learned quality model as a local ONNX file, and open it under its contract.

In: a model reference, one of
- a `.onnx` file;
- an MLflow model folder holding `artifacts/model.onnx` (the layout of a registered version, as
  training/registry/package.py writes it; the folder `artifacts/` itself is accepted too);
- `models:/<name>@<alias>` or `models:/<name>/<version>` in the MLflow Model Registry at a tracking URI
  (`registry_tracking_uri`: the settings' `mlflow_tracking_uri`, else SQLite under the storage root).
Out: `resolve_model_file` -> a `ModelFile` (the local ONNX path, and `source`: the reference with the
version an alias pointed at, e.g. `models:/crisp-quality/3`); `open_session(path, threads)` -> an
onnxruntime InferenceSession checked against the contract, and the canvas long side it was trained at;
`canvas_version(session, path)` -> the canvas version it was trained on.

The ONNX contract of the quality model: one input named `image`, float32 N x 3 x H x W, RGB in [0, 1],
H and W dynamic; one output named `score`, float32 of shape N (or N x 1), 0-5, higher is better. The
metadata_props key `canvas_long_side` is the long side of the quality canvas it was trained on
(pipeline/distort/canvas.py; 384 when absent), and `canvas_version` how a photo is shrunk to it (1 when
absent: models exported before canvas version 2 existed were trained on version 1 canvases).

The matte model (pipeline/matte/predict.py) is found and opened the same way, its contract differing only in
the output: `alpha`, float32 N x 1 x H x W in [0, 1] (`open_session(path, threads, output="alpha")`).

Every failure is a `QualityModelError` (an InputError: exit 2) whose one sentence names the reference and the
problem; `ModelNotRegisteredError`, one kind of it, says the registry holds no such model, alias or version
(or there is no SQLite registry at all), which ingest's `quality_model: auto` takes as "no model to score
with" rather than a failure. MLflow (slow to import) and onnxruntime are imported only when needed; nothing
here imports training/ or torch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.distort.canvas import CANVAS_VERSIONS, MIN_SHORT_SIDE
from pipeline.storage import normalize_root
from schemas.errors import InputError

log = logging.getLogger(__name__)

INPUT_NAME, OUTPUT_NAME = "image", "score"
CANVAS_KEY, DEFAULT_CANVAS_LONG_SIDE = "canvas_long_side", 384
CANVAS_VERSION_KEY, UNRECORDED_CANVAS_VERSION = "canvas_version", 1
ONNX_IN_MODEL_DIR = Path("artifacts") / "model.onnx"
DEFAULT_LOCAL_DIR = Path(".crisp/mlflow")  # SQLite home when the root is not a local folder


class QualityModelError(InputError, ValueError):
    """The quality model reference cannot be used; the message says which one and why."""


class ModelNotRegisteredError(QualityModelError):
    """The registry has no such model, alias or version, or there is no SQLite registry file."""


@dataclass(frozen=True)
class ModelFile:
    path: Path  # the local ONNX file
    source: str  # where it came from: a path, or models:/<name>/<version>


def registry_tracking_uri(
    root: str, tracking_uri: str | None = None, local_dir: Path = DEFAULT_LOCAL_DIR
) -> str:
    """The MLflow store of the settings: `tracking_uri` when set, else SQLite `<root>/mlflow/mlflow.db` for
    a `file://` root, `<local_dir>/mlflow.db` otherwise. The one rule: training/registry/versions.py's
    RegistryConfig.resolved_tracking_uri calls it and adds the mkdir (reading must not create a registry)."""
    if tracking_uri:
        return tracking_uri
    root = normalize_root(root)
    local = root.startswith("file://")
    folder = Path(root[len("file://") :]) / "mlflow" if local else local_dir.absolute()
    return f"sqlite:///{folder / 'mlflow.db'}"


def parse_model_uri(uri: str) -> tuple[str, str | None, str | None]:
    """'models:/name@alias' -> (name, alias, None); 'models:/name/3' -> (name, None, '3')."""
    body = uri[len("models:/") :]
    name, at, alias = body.partition("@")
    if at and name and alias and "/" not in alias:
        return name, alias, None
    name, _, version = body.rpartition("/")
    if name and version.isdigit():
        return name, None, version
    raise QualityModelError(
        f"malformed model URI {uri!r}: use models:/<name>@<alias> or models:/<name>/<version>"
    )


def resolve_model_file(reference: str, download_dir: Path, tracking_uri: str | None = None) -> ModelFile:
    """The local ONNX file behind `reference`; registered versions are downloaded into `download_dir`."""
    reference = str(reference)
    if reference.startswith("models:/"):
        if tracking_uri is None:
            raise QualityModelError(
                f"{reference} needs a tracking URI (settings mlflow_tracking_uri or root)"
            )
        return _download_registered(reference, tracking_uri, Path(download_dir))
    path = Path(reference)
    if path.is_file():
        if path.suffix.lower() != ".onnx":
            raise QualityModelError(f"{path} is not an ONNX file (.onnx) or an MLflow model folder")
        return ModelFile(path, str(path))
    if path.is_dir():
        for candidate in (path / ONNX_IN_MODEL_DIR, path / ONNX_IN_MODEL_DIR.name):
            if candidate.is_file():
                return ModelFile(candidate, str(path))
        raise QualityModelError(f"model folder {path} has no {ONNX_IN_MODEL_DIR} (nor model.onnx)")
    raise QualityModelError(f"no such model file or folder: {path}")


def _check_sqlite_store(tracking_uri: str) -> None:
    """A missing SQLite file is an empty registry: say so instead of letting MLflow create one."""
    if tracking_uri.startswith("sqlite:///"):
        database = Path(tracking_uri[len("sqlite:///") :])
        if not database.is_file():
            raise ModelNotRegisteredError(
                f"no model registry at {database}: register the quality model first, "
                "or pass --model a .onnx file or a model folder"
            )


def _download_registered(reference: str, tracking_uri: str, download_dir: Path) -> ModelFile:
    name, alias, version = parse_model_uri(reference)
    _check_sqlite_store(tracking_uri)  # before importing MLflow (seconds): no registry is a quick answer
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    # A client on the given store, never mlflow's global URIs: download_artifacts("models:/...") would look
    # the name up in the global registry, so the version's own artifact URI is downloaded instead.
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        registered = _registered_model(client, name, tracking_uri)
        if alias is not None:
            aliases = dict(registered.aliases or {})
            if alias not in aliases:
                raise ModelNotRegisteredError(
                    f"model {name!r} has no alias @{alias}; its aliases: {sorted(aliases) or 'none'}"
                )
            version = str(aliases[alias])
        try:
            source_uri = client.get_model_version_download_uri(name, version)
        except MlflowException:
            raise ModelNotRegisteredError(f"model {name!r} has no version {version}") from None
        label = f"models:/{name}/{version}"
        try:
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=f"{source_uri.rstrip('/')}/{ONNX_IN_MODEL_DIR.as_posix()}",
                dst_path=str(download_dir),
                tracking_uri=tracking_uri,
                registry_uri=tracking_uri,
            )
        except (MlflowException, OSError):
            raise QualityModelError(
                f"{label} has no {ONNX_IN_MODEL_DIR} artifact: it is not an exported quality model"
            ) from None
    except MlflowException as exc:  # an unreachable server, a broken store
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise QualityModelError(f"cannot read the model registry at {tracking_uri}: {first_line}") from None
    log.info("resolved %s to %s", reference, label)
    return ModelFile(Path(local), label)


def _registered_model(client: Any, name: str, tracking_uri: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_registered_model(name)
    except MlflowException:
        known = sorted(m.name for m in client.search_registered_models())
        raise ModelNotRegisteredError(
            f"no registered model {name!r} at {tracking_uri}; registered models: {known or 'none'}"
        ) from None


def _onnxruntime_errors() -> tuple[type[Exception], ...]:
    """onnxruntime's load errors (InvalidProtobuf, InvalidGraph, Fail...): pybind classes that derive
    from Exception directly, so they are collected from their module rather than caught as Exception."""
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    found = [v for v in vars(state).values() if isinstance(v, type) and issubclass(v, Exception)]
    return (*found, RuntimeError, OSError)


def open_session(path: Path, threads: int = 1, output: str = OUTPUT_NAME) -> tuple[Any, int]:
    """An onnxruntime CPU session on `path` (`threads` intra-op threads, one inter-op thread, all graph
    optimizations) checked against the contract, and the model's canvas long side. `output`: `score` (the
    quality model, shape N or N x 1) or `alpha` (the matte model, N x 1 x H x W)."""
    import onnxruntime as ort

    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise QualityModelError(f"threads must be a whole number of at least 1, got {threads!r}")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    except _onnxruntime_errors() as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise QualityModelError(f"{path} is not a valid ONNX model: {reason}") from None
    _check_contract(session, path, output)
    return session, _canvas_long_side(session, path)


OUTPUT_RANKS = {OUTPUT_NAME: (1, 2), "alpha": (4,)}  # the ranks each output may have


def _check_contract(session: Any, path: Path, output: str) -> None:
    inputs, outputs = session.get_inputs(), session.get_outputs()
    expected = f"expected one input {INPUT_NAME!r} (float32 N x 3 x H x W) and an output {output!r}"
    if [i.name for i in inputs] != [INPUT_NAME] or output not in [o.name for o in outputs]:
        got = f"inputs {[i.name for i in inputs]}, outputs {[o.name for o in outputs]}"
        raise QualityModelError(f"{path} does not follow the {output} model contract: {expected}, got {got}")
    image, score = inputs[0], next(o for o in outputs if o.name == output)
    shape = list(image.shape)
    # a static channel count must be 3; a symbolic one (a str, or None) is checked at the first run
    rgb_input = len(shape) == 4 and (shape[1] == 3 or not isinstance(shape[1], int))
    if image.type != "tensor(float)" or not rgb_input:
        raise QualityModelError(
            f"{path} does not follow the {output} model contract: {expected}, "
            f"got input {image.type} of shape {shape}"
        )
    if score.type != "tensor(float)" or len(score.shape) not in OUTPUT_RANKS[output]:
        raise QualityModelError(
            f"{path} does not follow the {output} model contract: output {output!r} must be float32 "
            f"of rank {' or '.join(map(str, OUTPUT_RANKS[output]))}, got {score.type} of shape {score.shape}"
        )


def _canvas_long_side(session: Any, path: Path) -> int:
    raw = session.get_modelmeta().custom_metadata_map.get(CANVAS_KEY)
    if raw is None:
        return DEFAULT_CANVAS_LONG_SIDE
    try:
        value = int(str(raw).strip())
    except ValueError:
        value = 0
    if value < MIN_SHORT_SIDE:  # quality_canvas refuses smaller canvases
        raise QualityModelError(f"{path}: metadata {CANVAS_KEY}={raw!r} is not a canvas size in pixels")
    return value


def canvas_version(session: Any, path: Path) -> int:
    """The quality canvas version the model at `path` (open in `session`) was trained on."""
    raw = session.get_modelmeta().custom_metadata_map.get(CANVAS_VERSION_KEY)
    if raw is None:
        return UNRECORDED_CANVAS_VERSION
    version = int(raw) if str(raw).strip().isdigit() else None
    if version not in CANVAS_VERSIONS:
        raise QualityModelError(
            f"{path}: metadata {CANVAS_VERSION_KEY}={raw!r} is not a known canvas version "
            f"{list(CANVAS_VERSIONS)}; this model needs a newer Crisp"
        )
    return version
