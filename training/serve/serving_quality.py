"""MLflow pyfunc of a registered quality model (MLflow "models from code": this file is the model).

In: the artifacts the registry logs with each version: `onnx` (training/serve/export_onnx.py) and `meta`.
Out: `predict(images)`: a uint8 photo H x W x 3 of any size (or a list of them) in, its technical
quality score in [0, 5] (higher is better) out, computed exactly as ingest and `crisp quality score`
compute it (pipeline.quality.scorer: the quality canvas, then ONNX Runtime on one thread).
"""

from __future__ import annotations

import mlflow
from mlflow.pyfunc import PythonModel


class QualityOnnxModel(PythonModel):
    def load_context(self, context):
        from pipeline.quality.scorer import QualityScorer

        self.scorer = QualityScorer(context.artifacts["onnx"], threads=1)

    def predict(self, context, model_input, params=None):
        import numpy as np

        images = model_input if isinstance(model_input, list) else [model_input]
        scores = [self.scorer.score_rgb(np.asarray(image, dtype=np.uint8)) for image in images]
        return scores if isinstance(model_input, list) else scores[0]


mlflow.models.set_model(QualityOnnxModel())
