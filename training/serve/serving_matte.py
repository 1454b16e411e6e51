"""MLflow pyfunc of a registered matte model (MLflow "models from code": this file is the model).

In: the artifacts the registry logs with each version: `onnx` (training/serve/export_onnx.py, output
`alpha`) and `meta`. Out: `predict(images)`: a uint8 photo H x W x 3 of any size (or a list of them) in,
its alpha matte (float32 H x W in [0, 1], at the photo's full resolution) out, computed exactly as
`crisp cutout` computes it (pipeline/matte/predict.py: the model's canvas, ONNX Runtime on one thread,
guided upsampling).
"""

from __future__ import annotations

import mlflow
from mlflow.pyfunc import PythonModel


class MatteOnnxModel(PythonModel):
    def load_context(self, context):
        from pipeline.matte.predict import MattePredictor

        self.predictor = MattePredictor(context.artifacts["onnx"], threads=1)

    def predict(self, context, model_input, params=None):
        import numpy as np

        images = model_input if isinstance(model_input, list) else [model_input]
        mattes = [self.predictor.alpha(np.asarray(image, dtype=np.uint8)) for image in images]
        return mattes if isinstance(model_input, list) else mattes[0]


mlflow.models.set_model(MatteOnnxModel())
