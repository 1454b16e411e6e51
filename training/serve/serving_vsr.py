"""MLflow pyfunc wrapper of a registered video-SR model (MLflow "models from code": this file is the model).

In: the artifacts the registry logs with each version: `torchscript` (the traced multi-frame model) and
`meta` (JSON: arch, scale, arch_kwargs with `frames` and `align`), and the code path `align.py`
(pipeline/video/align.py). Out: `predict(frames)`: a uint8 clip T x H x W x 3 in (T >= 1 frames of one
shot), the upscaled uint8 clip T x (H*s) x (W*s) x 3 out, each frame from its own window of `frames`
neighbours (the clip's ends repeated, as `crisp upscale` serves a video; aligned on the centre first for a
model trained on aligned windows, align="flow"); anything else raises ValueError. It needs torch, numpy and
OpenCV, not the crisp package; memory grows with the clip's size (crisp's own path, `crisp upscale VIDEO`,
streams and tiles).
"""

from __future__ import annotations

import json

import mlflow
from mlflow.pyfunc import PythonModel


class VideoSRTorchScriptModel(PythonModel):
    def load_context(self, context):
        import torch

        self.model = torch.jit.load(context.artifacts["torchscript"], map_location="cpu").eval()
        with open(context.artifacts["meta"]) as handle:
            self.meta = json.load(handle)
        options = self.meta.get("arch_kwargs") or {}
        self.frames = int(options.get("frames", 1))
        self.prealigned = options.get("align") == "flow" and self.frames > 1

    def predict(self, context, model_input, params=None):
        import numpy as np
        import torch

        clip = np.asarray(model_input)
        if clip.ndim != 4 or clip.shape[3] != 3 or 0 in clip.shape:
            raise ValueError(f"expected a uint8 clip T x H x W x 3, got shape {clip.shape}")
        if clip.dtype != np.uint8:
            if clip.dtype.kind not in "iu" or clip.min() < 0 or clip.max() > 255:
                raise ValueError(f"expected a uint8 clip T x H x W x 3, got {clip.dtype} values")
            clip = clip.astype(np.uint8)
        half = self.frames // 2
        padded = np.concatenate([clip[:1].repeat(half, 0), clip, clip[-1:].repeat(half, 0)])
        out = []
        with torch.inference_mode():
            for t in range(len(clip)):
                frames = padded[t : t + self.frames]
                if self.prealigned:
                    from align import align_window  # the shipped pipeline/video/align.py

                    frames = np.stack(align_window(frames))
                window = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 255.0
                window = window.reshape(1, -1, *window.shape[2:])
                out.append(self.model(window)[0].clamp(0.0, 1.0).mul(255.0).round().to(torch.uint8))
        return torch.stack(out).permute(0, 2, 3, 1).numpy()


mlflow.models.set_model(VideoSRTorchScriptModel())
