"""The video super-resolution task: synthetic clips in, a multi-frame x4 upscaler out.

In: nothing. Out: `TASK`, the `Task` record (training/tasks/__init__.py) wiring the video pieces into the
shared stack: the clip index (schemas/clip_samples.py), `FrameFusion` (training/archs/frame_fusion.py: a
window of stacked frames in, the centre frame x4 out), the SR Lightning module unchanged (`SRModule`: the
window is its "lr", the centre frame's HR its "hr"; L1, EMA, PSNR-Y / SSIM-Y validation) with
`ClipDataModule` (training/data/clips.py, the window from the model's `frames`), `VsrGatePolicy` and
`validate_vsr` (training/gates/vsr_gates.py, vsr_validate.py), the TorchScript export and the clip pyfunc
(training/serve/serving_vsr.py: uint8 T x H x W x 3 in and x4 out), the report (training/report/vsr.py).
Served to videos by `crisp upscale` (training/serve/upscale.py `upscale_video`: a sliding window over the
decoded frames). Registered as `crisp-vsr-x4`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.video import align as video_align
from schemas.clip_samples import CLIP_SAMPLE_SCHEMA
from training.archs import build_arch, input_frames
from training.archs.frame_fusion import FrameFusion
from training.data.clips import ClipDataConfig, ClipDataModule
from training.fit.checkpoint import MONITOR
from training.fit.lit_module import ModelConfig, SRModule
from training.gates.vsr_gates import VsrGatePolicy
from training.gates.vsr_validate import validate_vsr
from training.registry.package import torchscript_artifacts
from training.tasks import Task

MODEL_CODE = Path(__file__).resolve().parents[1] / "serve" / "serving_vsr.py"
ALIGN_CODE = Path(video_align.__file__)  # shipped with the pyfunc, which imports it as `align`
VSR_ARCHS = {"frame_fusion": FrameFusion}


def build_vsr_arch(arch: str, scale: int | None, options: Mapping[str, Any]):
    if arch not in VSR_ARCHS:
        raise ValueError(f"unknown video-SR arch {arch!r}; known: {sorted(VSR_ARCHS)}")
    return build_arch(arch, scale or 4, **options)


def make_data(data: ClipDataConfig, model: ModelConfig) -> ClipDataModule:
    """Windows of as many frames as the configured arch takes, aligned when it takes them `prealigned`."""
    arch = build_vsr_arch(model.arch, model.scale, model.arch_options)
    return ClipDataModule(data, window=input_frames(arch), prealigned=getattr(arch, "prealigned", False))


def signature():
    """uint8 clips T x H x W x 3 in, T x 4H x 4W x 3 out."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Schema, TensorSpec

    clip = Schema([TensorSpec(np.dtype(np.uint8), (-1, -1, -1, 3))])
    return ModelSignature(inputs=clip, outputs=clip)


def input_example() -> np.ndarray:
    return np.full((3, 17, 23, 3), 128, dtype=np.uint8)


def serving_requirements() -> list[str]:
    """torch for the TorchScript model, OpenCV for the window alignment (pipeline/video/align.py)."""
    from importlib.metadata import version

    import torch

    return [f"torch=={torch.__version__.split('+')[0]}",
            f"opencv-python-headless=={version('opencv-python-headless')}"]  # fmt: skip


def upscale_frames(model: Any, clip: np.ndarray) -> np.ndarray:
    """The serving transform on an in-memory clip: every frame from its own window (vsr_validate)."""
    from training.gates.vsr_validate import upscale_clip

    return upscale_clip(model, clip)


def write_report(output: str, verdict: Any, *, storage: Any, exported: Any = None, **report: Any):
    from training.report.vsr import write_vsr_report

    return write_vsr_report(output, verdict, storage=storage, **report)


TASK = Task(
    name="vsr",
    sample_schema=CLIP_SAMPLE_SCHEMA,
    archs=VSR_ARCHS,
    build_arch=build_vsr_arch,
    model_config=ModelConfig,
    data_config=ClipDataConfig,
    lit_module=SRModule,
    make_data=make_data,
    monitor=MONITOR,
    policy=VsrGatePolicy,
    validate=validate_vsr,
    model_code=MODEL_CODE,
    model_code_paths=(ALIGN_CODE,),
    signature=signature,
    input_example=input_example,
    serve=upscale_frames,
    export_artifacts=torchscript_artifacts,
    serving_requirements=serving_requirements,
    report=write_report,
    registered_as="crisp-vsr-x{scale}",
    reference_model="crisp-sr-x4",  # the single-frame champion a video model must beat (gates.vsr)
)
