"""MLflow pyfunc wrapper of a registered SR model (MLflow "models from code": this file is the model).

In: the artifacts the registry logs with each version: `torchscript` (the traced model, see
training/serve/export.py) and `meta` (JSON: arch, scale, export input shape). Out: `predict(images)` for
MLflow serving / `mlflow.pyfunc.load_model`: a uint8 image H x W x 3 of any size (or a list of them) in,
the upscaled uint8 image(s) (H*s) x (W*s) x 3 out, one whole-image forward pass per image; anything
else (another shape, floats, values outside 0..255) raises ValueError. `params={"output": "float"}`
returns the model's float32 values in [0, 1] before 8-bit rounding (parity checks). It needs only torch
and numpy, not the crisp package.

Any size is accepted because the export gate (training/serve/export.py) passes only traces that match eager
at odd sizes other than the traced one. Memory grows with the image area (no tiling here); crisp's own
serving path (`training.registry.versions.load_model` + `training.serve.upscale.upscale_image`) tiles large images.
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

    def _one(self, image, output="uint8"):
        import numpy as np
        import torch

        array = np.asarray(image)
        if array.ndim != 3 or array.shape[2] != 3 or 0 in array.shape:
            raise ValueError(f"expected a uint8 H x W x 3 image, got shape {array.shape}")
        if array.dtype != np.uint8:  # JSON requests arrive as integer lists: accept them if 8-bit
            if array.dtype.kind not in "iu" or array.min() < 0 or array.max() > 255:
                raise ValueError(f"expected a uint8 H x W x 3 image, got {array.dtype} values")
            array = array.astype(np.uint8)
        x = torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)[None].float() / 255.0
        with torch.inference_mode():
            y = self.model(x)[0].clamp(0.0, 1.0)
        if output == "float":  # the model's own values, before 8-bit rounding (for parity checks)
            return y.permute(1, 2, 0).numpy()
        if output != "uint8":
            raise ValueError(f"params output must be 'uint8' or 'float', got {output!r}")
        return y.mul(255.0).round().to(torch.uint8).permute(1, 2, 0).numpy()

    def predict(self, context, model_input, params=None):
        output = (params or {}).get("output", "uint8")
        if isinstance(model_input, list):
            return [self._one(image, output) for image in model_input]
        return self._one(model_input, output)


mlflow.models.set_model(SRTorchScriptModel())
