"""The quality task: the distortion grid in, a no-reference technical-quality scorer (0-5) out.

In: nothing. Out: `TASK`, the `Task` record (training/tasks/__init__.py) wiring the quality pieces into
the shared stack: the quality sample index (schemas/quality_samples.py), `QualityNet`
(training/archs/quality_net.py), `QualityModule` (regression + in-reference ranking, training/fit/lit_quality.py)
and `QualityDataModule` (training/data/quality.py), `QualityGatePolicy` and `validate_quality`
(training/gates/quality_gates.py, training/gates/quality_validate.py), the ONNX export the data side runs, and the
pyfunc (training/serve/serving_quality.py: uint8 H x W x 3 in, a float score out). Registered as `crisp-quality`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from schemas.quality_samples import QUALITY_SAMPLE_SCHEMA
from training.archs.quality_net import QUALITY_ARCHS, build_quality_arch
from training.data.quality import QualityDataConfig, QualityDataModule
from training.fit.lit_quality import QualityModelConfig, QualityModule
from training.gates.quality_gates import QualityGatePolicy
from training.gates.quality_validate import validate_quality
from training.registry.package import onnx_artifacts
from training.tasks import Task

MODEL_CODE = Path(__file__).resolve().parents[1] / "serve" / "serving_quality.py"


def build_arch(arch: str, scale: int | None, options: Mapping[str, Any]):
    if scale is not None:
        raise ValueError(f"a quality arch scores, it does not upscale: got scale {scale}")
    return build_quality_arch(arch, **options)


def make_data(data: QualityDataConfig, model: QualityModelConfig) -> QualityDataModule:
    return QualityDataModule(data, model)


def signature():
    """uint8 H x W x 3 photos of any size in, one float score out."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, Schema, TensorSpec

    image = Schema([TensorSpec(np.dtype(np.uint8), (-1, -1, 3))])
    return ModelSignature(inputs=image, outputs=Schema([ColSpec("double")]))


def input_example() -> np.ndarray:
    return np.full((37, 53, 3), 128, dtype=np.uint8)


def serving_requirements() -> list[str]:
    from importlib.metadata import version

    return [f"onnxruntime=={version('onnxruntime')}"]


def score_image(model: Any, image: np.ndarray) -> float:
    """The serving transform: a scorer (pipeline.quality.scorer.QualityScorer) on one photo."""
    return model.score_rgb(image)


def write_report(
    output: str, verdict: Any, *, storage: Any, exported: Any = None, photos: Any = (), **report: Any
):
    """training/report/quality.py on the validation grid, with the product ranking of the images
    partitions the grid was made from (pairs/quality_grid/<date> comes from images/<date>)."""
    from pipeline.commit import committed_partitions
    from training.report.quality import write_quality_report

    grid = list(getattr(verdict.config, "grid_partitions", None) or [])
    images = sorted(set(grid) & set(committed_partitions(storage, "images")))
    onnx = exported.data if exported is not None else None
    return write_quality_report(
        output, verdict, storage=storage, onnx=onnx, image_partitions=images, **report
    )


TASK = Task(
    name="quality",
    sample_schema=QUALITY_SAMPLE_SCHEMA,
    archs=QUALITY_ARCHS,
    build_arch=build_arch,
    model_config=QualityModelConfig,
    data_config=QualityDataConfig,
    lit_module=QualityModule,
    make_data=make_data,
    monitor="val/srcc",
    policy=QualityGatePolicy,
    validate=validate_quality,
    model_code=MODEL_CODE,
    signature=signature,
    input_example=input_example,
    serve=score_image,
    export_artifacts=onnx_artifacts,
    serving_requirements=serving_requirements,
    report=write_report,
)
