"""The super-resolution task: LR/HR pairs in, an x2/x3/x4 upscaler out.

In: nothing. Out: `TASK`, the `Task` record (training/tasks/__init__.py) that wires the SR pieces into
the shared stack: the pair index schema (schemas/pairs.py), the arch zoo (training/archs), `SRModule`
(L1 loss, PSNR-Y/SSIM-Y validation, EMA) and `SRDataModule` (range reads of pair blocks), `GatePolicy`
and `validate` (bicubic margin, champion, latency, export parity on odd sizes), the uint8 HxWx3 pyfunc
(training/serve/serving_pyfunc.py) with its signature, and `upscale_image` (tiled serving with overlap).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from schemas.pairs import PAIR_INDEX_SCHEMA
from training.archs import ARCHS, build_arch
from training.data.module import DataConfig, SRDataModule
from training.fit.checkpoint import MONITOR
from training.fit.lit_module import ModelConfig, SRModule
from training.gates.policy import GatePolicy
from training.gates.validate import validate
from training.registry.package import torchscript_artifacts
from training.serve.upscale import upscale_image
from training.tasks import Task

MODEL_CODE = Path(__file__).resolve().parents[1] / "serve" / "serving_pyfunc.py"


def signature():
    """uint8 H x W x 3 photos of any size in and out; `output` = uint8 | float (pre-rounding values)."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ParamSchema, ParamSpec, Schema, TensorSpec

    image = Schema([TensorSpec(np.dtype(np.uint8), (-1, -1, 3))])
    params = ParamSchema([ParamSpec("output", "string", "uint8")])
    return ModelSignature(inputs=image, outputs=image, params=params)


def build_sr_arch(arch: str, scale: int | None, options: Mapping[str, Any]):
    if scale is None:
        raise ValueError(f"an SR arch needs a scale; {arch!r} was given none")
    return build_arch(arch, scale, **options)


def make_data(data: DataConfig, model: ModelConfig) -> SRDataModule:
    return SRDataModule(data, scale=model.scale, levels=model.arch_options.get("levels", ()))


def serving_requirements() -> list[str]:
    import torch

    return [f"torch=={torch.__version__.split('+')[0]}"]


def input_example() -> np.ndarray:
    return np.full((37, 53, 3), 128, dtype=np.uint8)


def write_sr_report(output: str, verdict: Any, *, storage: Any, exported: Any = None, **report: Any):
    """training/report/sr.py: benchmarks vs bicubic, curves, side-by-sides on `photos`."""
    from training.report.sr import write_report

    return write_report(output, verdict, **report)


TASK = Task(
    name="sr",
    sample_schema=PAIR_INDEX_SCHEMA,
    archs=ARCHS,
    build_arch=build_sr_arch,
    model_config=ModelConfig,
    data_config=DataConfig,
    lit_module=SRModule,
    make_data=make_data,
    monitor=MONITOR,
    policy=GatePolicy,
    validate=validate,
    model_code=MODEL_CODE,
    signature=signature,
    input_example=input_example,
    serve=upscale_image,
    export_artifacts=torchscript_artifacts,
    serving_requirements=serving_requirements,
    report=write_sr_report,
)
