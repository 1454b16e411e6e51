"""MLflow pyfunc wrapper of a registered SR model (MLflow "models from code": this file is the model).

In: the artifacts the registry logs with each version: `torchscript` (the traced model, see
training/export.py) and `meta` (JSON: arch, scale, export input shape, whether the trace is
shape-generic). Out: `predict(images)` for MLflow serving / `mlflow.pyfunc.load_model`: a uint8 image
H x W x 3 (or a list of them) in, the upscaled uint8 image(s) (H*s) x (W*s) x 3 out, one forward pass
per image. It needs only torch and numpy, not the crisp package.

A trace may be specialised to the traced input size (archs with a numpy-computed bicubic skip): then
`meta["shape_generic"]` is false and only that size is accepted; crisp's own serving path
(`training.registry.load_model` + `training.upscale.upscale_image`) handles any size by tiling.
"""

from __future__ import annotations

import json

import mlflow
from mlflow.pyfunc import PythonModel


class SRTorchScriptModel(PythonModel):
    def load_context(self, context):
        import torch

        self.model = torch.jit.load(context.artifacts["torchscript"], map_location="cpu").eval()
        with open(context.artifacts["meta"]) as handle:
            self.meta = json.load(handle)

    def _one(self, image):
        import numpy as np
        import torch

        array = np.asarray(image, dtype=np.uint8)
        if array.ndim != 3 or array.shape[2] != 3:
            raise ValueError(f"expected a uint8 H x W x 3 image, got shape {array.shape}")
        traced = self.meta.get("input_shape")
        if not self.meta.get("shape_generic", True) and list(array.shape[:2]) != traced[2:]:
            raise ValueError(
                f"this export only accepts {traced[2]}x{traced[3]} inputs; use `crisp upscale` instead"
            )
        x = torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)[None].float() / 255.0
        with torch.inference_mode():
            y = self.model(x)[0].clamp(0.0, 1.0).mul(255.0).round().to(torch.uint8)
        return y.permute(1, 2, 0).numpy()

    def predict(self, context, model_input, params=None):
        if isinstance(model_input, list):
            return [self._one(image) for image in model_input]
        return self._one(model_input)


mlflow.models.set_model(SRTorchScriptModel())
