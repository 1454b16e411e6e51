"""The learned quality model on the data side: resolve its ONNX file, score photos with onnxruntime.

In: a model reference (a .onnx file, an MLflow model folder, models:/<name>@<alias>) and RGB photos.
Out: scores in [0, 5] (higher is better); see model_file.py for the ONNX contract, scorer.py for how a
photo is prepared. No torch and nothing of training/ is imported.
"""

from __future__ import annotations

from pipeline.quality.model_file import (
    ModelFile,
    ModelNotRegisteredError,
    QualityModelError,
    open_session,
    registry_tracking_uri,
    resolve_model_file,
)
from pipeline.quality.scorer import QualityScorer

__all__ = [
    "ModelFile",
    "ModelNotRegisteredError",
    "QualityModelError",
    "QualityScorer",
    "open_session",
    "registry_tracking_uri",
    "resolve_model_file",
]
