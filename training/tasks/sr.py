"""The super-resolution task: LR/HR pairs in, an x2/x3/x4 upscaler out.

In: nothing. Out: `TASK`, the `Task` record (training/tasks/__init__.py) that wires the SR pieces into
the shared stack: the pair index schema (schemas/pairs.py), the arch zoo (training/archs), `SRModule`
(L1 loss, PSNR-Y/SSIM-Y validation, EMA) and `SRDataModule` (range reads of pair blocks), `GatePolicy`
and `validate` (bicubic margin, champion, latency, export parity on odd sizes), the uint8 HxWx3 pyfunc
(training/serving_pyfunc.py) with its signature, and `upscale_image` (tiled serving with overlap).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from schemas.pairs import PAIR_INDEX_SCHEMA
from training.archs import ARCHS
from training.data.module import SRDataModule
from training.lit_module import SRModule
from training.policy import GatePolicy
from training.tasks import Task
from training.upscale import upscale_image
from training.validate import validate

MODEL_CODE = Path(__file__).resolve().parents[1] / "serving_pyfunc.py"


def signature():
    """uint8 H x W x 3 photos of any size in and out; `output` = uint8 | float (pre-rounding values)."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ParamSchema, ParamSpec, Schema, TensorSpec

    image = Schema([TensorSpec(np.dtype(np.uint8), (-1, -1, 3))])
    params = ParamSchema([ParamSpec("output", "string", "uint8")])
    return ModelSignature(inputs=image, outputs=image, params=params)


def input_example() -> np.ndarray:
    return np.full((37, 53, 3), 128, dtype=np.uint8)


TASK = Task(
    name="sr",
    sample_schema=PAIR_INDEX_SCHEMA,
    archs=ARCHS,
    lit_module=SRModule,
    data_module=SRDataModule,
    policy=GatePolicy,
    validate=validate,
    model_code=MODEL_CODE,
    signature=signature,
    input_example=input_example,
    serve=upscale_image,
)
