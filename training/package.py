"""Package a validated checkpoint as an MLflow pyfunc model folder (what the registry stores per version).

In: a work folder, the checkpoint's URI and bytes, the safely loaded module and its `CheckpointMeta`, the
`Verdict`. Out: `<folder>/model`, an MLflow model directory (MLmodel, requirements, the model code
training/serving_pyfunc.py) whose artifacts are: the checkpoint exactly as validated (`checkpoint.ckpt`,
or `checkpoint.safetensors` + `checkpoint.json`), its TorchScript export (`model.torchscript.pt`, left
out when the arch cannot be traced, which also fails the export gate), `verdict.json` and `meta.json`
(CheckpointMeta plus the export's input shape and whether the trace is shape-generic).

Nothing is pickled: the pyfunc is "models from code" and the checkpoint loads with weights_only.
Requirements are pinned explicitly (torch, mlflow, numpy), which also skips MLflow's slow inference.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import fsspec
from torch import nn

from training.export import export_torchscript, save_torchscript
from training.measure import golden_input
from training.safe_load import CheckpointMeta
from training.validate import Verdict

MODEL_CODE = Path(__file__).with_name("serving_pyfunc.py")


def read_uri(uri: str, options: Mapping[str, Any] | None = None) -> bytes:
    """All bytes of a local path or fsspec URI."""
    with fsspec.open(uri, "rb", **dict(options or {})) as handle:
        return handle.read()


def write_artifacts(
    folder: Path,
    uri: str,
    data: bytes,
    module: nn.Module,
    meta: CheckpointMeta,
    verdict: Verdict,
    options: Mapping[str, Any] | None = None,
) -> dict[str, Path]:
    """The checkpoint bytes (and safetensors sidecar), TorchScript export, verdict and meta as files."""
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".safetensors" if uri.endswith(".safetensors") else ".ckpt"
    artifacts = {"checkpoint": folder / f"checkpoint{suffix}", "verdict": folder / "verdict.json"}
    artifacts["checkpoint"].write_bytes(data)
    if suffix == ".safetensors":
        artifacts["sidecar"] = folder / "checkpoint.json"
        artifacts["sidecar"].write_bytes(read_uri(uri[: -len(suffix)] + ".json", options))
    artifacts["verdict"].write_text(verdict.model_dump_json(indent=1))
    exported = export_torchscript(module, golden_input(verdict.config.golden_size))
    if exported.module is not None:
        artifacts["torchscript"] = folder / "model.torchscript.pt"
        artifacts["torchscript"].write_bytes(save_torchscript(exported.module))
    export_meta = {"shape_generic": exported.shape_generic, "input_shape": list(exported.input_shape)}
    artifacts["meta"] = folder / "meta.json"
    artifacts["meta"].write_text(json.dumps({**meta.model_dump(mode="json"), **export_meta}, indent=1))
    return artifacts


def package_model(
    folder: Path,
    uri: str,
    data: bytes,
    module: nn.Module,
    meta: CheckpointMeta,
    verdict: Verdict,
    options: Mapping[str, Any] | None = None,
) -> Path:
    """Write the artifacts under `folder/artifacts` and the MLflow model under `folder/model` (returned)."""
    import mlflow
    import torch

    artifacts = write_artifacts(folder / "artifacts", uri, data, module, meta, verdict, options)
    requirements = [f"torch=={torch.__version__.split('+')[0]}", f"mlflow=={mlflow.__version__}", "numpy"]
    mlflow.pyfunc.save_model(
        path=str(folder / "model"),
        python_model=str(MODEL_CODE),
        artifacts={key: str(path) for key, path in artifacts.items()},
        pip_requirements=requirements,
    )
    return folder / "model"
