"""The background-removal task: matte composites in, a matting model (alpha of a product photo) out.

In: nothing. Out: `TASK`, the `Task` record (training/tasks/__init__.py) wiring the matte pieces into the
shared stack: the composite index (schemas/matte_samples.py), `MatteNet` (training/archs/matte_net.py),
`MatteModule` (BCE + soft IoU + L1 + compositional loss, training/fit/lit_matte.py) and `MatteDataModule`
(training/data/matte.py), `MatteGatePolicy` and `validate_matte` (training/gates/matte_gates.py,
training/gates/matte_validate.py), the ONNX export the data side runs (output `alpha`), the pyfunc
(training/serve/serving_matte.py: uint8 H x W x 3 in, a float32 H x W matte out) and the report
(training/report/matte.py). Registered as `crisp-matte`.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from schemas.matte_samples import MATTE_SAMPLE_SCHEMA
from training.archs.matte_net import MATTE_ARCHS, build_matte_arch
from training.data.matte import MatteDataConfig, MatteDataModule
from training.fit.lit_matte import MatteModelConfig, MatteModule
from training.gates.matte_gates import MatteGatePolicy
from training.gates.matte_validate import validate_matte
from training.registry.package import onnx_artifacts
from training.tasks import Task

MODEL_CODE = Path(__file__).resolve().parents[1] / "serve" / "serving_matte.py"


def build_arch(arch: str, scale: int | None, options: Mapping[str, Any]):
    if scale is not None:
        raise ValueError(f"a matte arch cuts out, it does not upscale: got scale {scale}")
    return build_matte_arch(arch, **options)


def make_data(data: MatteDataConfig, model: MatteModelConfig) -> MatteDataModule:
    return MatteDataModule(data, model)


def signature():
    """uint8 H x W x 3 photos of any size in, a float32 H x W matte of the same size out."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Schema, TensorSpec

    image = Schema([TensorSpec(np.dtype(np.uint8), (-1, -1, 3))])
    return ModelSignature(inputs=image, outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, -1))]))


def input_example() -> np.ndarray:
    return np.full((37, 53, 3), 255, dtype=np.uint8)


def serving_requirements() -> list[str]:
    from importlib.metadata import version

    return [
        f"onnxruntime=={version('onnxruntime')}",
        f"opencv-python-headless=={version('opencv-python-headless')}",
    ]


def matte_image(model: Any, image: np.ndarray) -> np.ndarray:
    """The serving transform: a predictor (pipeline.matte.predict.MattePredictor) on one photo."""
    return model.alpha(image)


def write_report(output: str, verdict: Any, *, storage: Any, exported: Any = None, **report: Any):
    """training/report/matte.py on the held-out composites the verdict was measured on."""
    from training.report.matte import write_matte_report

    onnx = exported.data if exported is not None else None
    return write_matte_report(output, verdict, storage=storage, onnx=onnx, **report)


TASK = Task(
    name="matte",
    sample_schema=MATTE_SAMPLE_SCHEMA,
    archs=MATTE_ARCHS,
    build_arch=build_arch,
    model_config=MatteModelConfig,
    data_config=MatteDataConfig,
    lit_module=MatteModule,
    make_data=make_data,
    monitor="val/iou",
    policy=MatteGatePolicy,
    validate=validate_matte,
    model_code=MODEL_CODE,
    signature=signature,
    input_example=input_example,
    serve=matte_image,
    export_artifacts=partial(onnx_artifacts, output="alpha"),
    serving_requirements=serving_requirements,
    report=write_report,
)
