"""Package a validated checkpoint as an MLflow pyfunc model folder (what the registry stores per version).

In: a work folder, the checkpoint's URI and bytes, the safely loaded module and its `CheckpointMeta`, the
`Verdict`, and the export the verdict checked (exported again only when not given). Out: `<folder>/model`, an MLflow model directory (MLmodel, requirements, the model code
training/serve/serving_pyfunc.py for the sr task: each task names its own) whose artifacts are: the checkpoint exactly as validated (`checkpoint.ckpt`,
or `checkpoint.safetensors` + `checkpoint.json`), its TorchScript export (`model.torchscript.pt`, left
out when the arch cannot be traced, which also fails the export gate), `verdict.json` and `meta.json`
(CheckpointMeta plus the export's input shape and whether the trace is shape-generic).

The model has the task's signature and input example (sr: uint8 H x W x 3 in and out, any size; 37 x 53).
Nothing is pickled: the pyfunc is "models from code" and the checkpoint loads with weights_only.
Requirements are pinned explicitly (torch, mlflow, numpy), which also skips MLflow's slow inference.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from pipeline.storage import read_uri
from training.gates.measure import golden_input
from training.gates.verdict import CheckpointMeta, Verdict
from training.serve.export import ExportResult, export_torchscript, save_torchscript


def write_artifacts(
    folder: Path,
    uri: str,
    data: bytes,
    module: nn.Module,
    meta: CheckpointMeta,
    verdict: Verdict,
    export_artifacts: Any = None,
    options: Mapping[str, Any] | None = None,
    exported: Any = None,
) -> dict[str, Path]:
    """The checkpoint bytes (and safetensors sidecar), the verdict, and what the task's `export_artifacts`
    writes (default: SR's `torchscript_artifacts`) as files."""
    export_artifacts = export_artifacts or torchscript_artifacts
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".safetensors" if uri.endswith(".safetensors") else ".ckpt"
    artifacts = {"checkpoint": folder / f"checkpoint{suffix}", "verdict": folder / "verdict.json"}
    artifacts["checkpoint"].write_bytes(data)
    if suffix == ".safetensors":
        artifacts["sidecar"] = folder / "checkpoint.json"
        artifacts["sidecar"].write_bytes(read_uri(uri[: -len(suffix)] + ".json", options))
    artifacts["verdict"].write_text(verdict.model_dump_json(indent=1))
    artifacts.update(export_artifacts(folder, module, meta, verdict, exported))
    return artifacts


def torchscript_artifacts(
    folder: Path, module: nn.Module, meta: CheckpointMeta, verdict: Verdict, exported: ExportResult | None
) -> dict[str, Path]:
    """SR: the TorchScript export (`exported`, the one the verdict checked; exported here only when not
    given) and meta.json with the export's input shape and whether the trace is shape-generic."""
    artifacts = {}
    if exported is None:
        exported = export_torchscript(
            module, golden_input(verdict.config.golden_size), verdict.config.export_atol
        )
    if exported.module is not None:
        artifacts["torchscript"] = folder / "model.torchscript.pt"
        artifacts["torchscript"].write_bytes(save_torchscript(exported.module))
    export_meta = {"shape_generic": exported.shape_generic, "input_shape": list(exported.input_shape)}
    artifacts["meta"] = folder / "meta.json"
    artifacts["meta"].write_text(json.dumps({**meta.model_dump(mode="json"), **export_meta}, indent=1))
    return artifacts


def onnx_artifacts(
    folder: Path,
    module: nn.Module,
    meta: CheckpointMeta,
    verdict: Verdict,
    exported: Any,
    output: str = "score",
) -> dict[str, Path]:
    """Models the data side runs (quality: output `score`; matte: `alpha`): `model.onnx` (the export the
    verdict checked, training/serve/export_onnx.py; exported here only when not given) and meta.json."""
    from training.serve.export_onnx import export_onnx

    if exported is None:  # registered from a recorded verdict (the sr_train DAG's register task)
        from pipeline.distort import CANVAS_LONG_SIDE

        recorded = verdict.export or {}
        canvas = recorded.get("canvas_long_side") or CANVAS_LONG_SIDE
        exported = export_onnx(module, canvas, verdict.config.export_atol, output=output,
                               canvas_version=recorded.get("canvas_version"))  # fmt: skip
    if exported.data is None:
        raise ValueError(f"the model cannot be exported to ONNX: {exported.error}")
    artifacts = {"onnx": folder / "model.onnx", "meta": folder / "meta.json"}
    artifacts["onnx"].write_bytes(exported.data)
    artifacts["meta"].write_text(
        json.dumps({**meta.model_dump(mode="json"), "export": exported.record()}, indent=1)
    )
    return artifacts


def package_model(
    folder: Path,
    uri: str,
    data: bytes,
    module: nn.Module,
    meta: CheckpointMeta,
    verdict: Verdict,
    options: Mapping[str, Any] | None = None,
    exported: ExportResult | None = None,
    task: str = "sr",
) -> Path:
    """Write the artifacts under `folder/artifacts` and the MLflow model under `folder/model` (returned):
    the serving code, signature and input example are the task's (training/tasks)."""
    import mlflow

    from training.tasks import get_task

    spec = get_task(task)
    artifacts = write_artifacts(
        folder / "artifacts", uri, data, module, meta, verdict, spec.export_artifacts, options, exported
    )
    requirements = [*spec.serving_requirements(), f"mlflow=={mlflow.__version__}", "numpy"]
    mlflow.pyfunc.save_model(
        path=str(folder / "model"),
        python_model=str(spec.model_code),
        code_paths=[str(path) for path in spec.model_code_paths] or None,
        artifacts={key: str(path) for key, path in artifacts.items()},
        pip_requirements=requirements,
        signature=spec.signature(),
        input_example=spec.input_example(),
    )
    return folder / "model"
