"""Export a model the data side runs to ONNX (a scorer, a matte model) and check it against eager.

In: an eval-mode `nn.Module` mapping N x 3 x H x W float [0, 1] to N scores (output `score`) or to
N x 1 x H x W mattes (output `alpha`), the canvas long side it was trained on (the size serving
prepares) and, for a quality model, the canvas version (pipeline/distort/canvas.py), the parity
tolerance and the (H, W) shapes to check. Out: `OnnxExport` (the model bytes, or None with the error,
the largest |ONNX Runtime - eager| over the checked shapes, whether that is within tolerance), and
`onnx_latency_ms`: the median time of the data side's own scorer (pipeline.quality.scorer, one thread)
on one photo, canvas preparation included.

The contract is pipeline/quality/model_file.py's: input `image` with dynamic N, H, W; output `score` of
shape N, or `alpha` of N x 1 x H x W (pipeline/matte/predict.py); metadata `canvas_long_side` and,
when given, `canvas_version` (a quality model file without it was trained on version 1 canvases). The
legacy TorchScript-based exporter is used (`dynamo=False`): the torch.export-based one needs onnxscript,
which is not installed. The shapes checked are not the traced one, so a trace frozen at one size fails
the gate.
"""

from __future__ import annotations

import io
import statistics
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pipeline.quality.model_file import CANVAS_KEY, CANVAS_VERSION_KEY

TRACE_SHAPE = (64, 80)  # traced at a small size; parity is checked at others
CHECK_SHAPES = ((384, 288), (211, 384))
OUTPUT_AXES = {"score": {0: "n"}, "alpha": {0: "n", 2: "h", 3: "w"}}  # the dynamic axes of each output


@dataclass(frozen=True)
class OnnxExport:
    data: bytes | None
    max_abs_diff: float
    passed: bool
    checked_shapes: list[tuple[int, int]] = field(default_factory=list)
    error: str | None = None
    canvas_long_side: int | None = None  # recorded in the file's metadata: the canvas serving prepares
    canvas_version: int | None = None  # likewise: how serving shrinks a photo to that canvas

    def record(self) -> dict:
        """The verdict's `export` entry."""
        return {
            "format": "onnx",
            "max_abs_diff": self.max_abs_diff,
            "passed": self.passed,
            "checked_shapes": [list(s) for s in self.checked_shapes],
            "error": self.error,
            "canvas_long_side": self.canvas_long_side,
            "canvas_version": self.canvas_version,
        }


def _onnx_bytes(module: nn.Module, canvas_long_side: int, canvas_version: int | None, output: str) -> bytes:
    import onnx

    buffer = io.BytesIO()
    example = torch.rand(1, 3, *TRACE_SHAPE, generator=torch.Generator().manual_seed(0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice
        torch.onnx.export(
            module,
            (example,),
            buffer,
            input_names=["image"],
            output_names=[output],
            dynamic_axes={"image": {0: "n", 2: "h", 3: "w"}, output: OUTPUT_AXES[output]},
            dynamo=False,
        )
    model = onnx.load_from_string(buffer.getvalue())
    entry = model.metadata_props.add()
    entry.key, entry.value = CANVAS_KEY, str(canvas_long_side)
    if canvas_version is not None:
        entry = model.metadata_props.add()
        entry.key, entry.value = CANVAS_VERSION_KEY, str(canvas_version)
    onnx.checker.check_model(model)
    return model.SerializeToString()


def export_onnx(
    module: nn.Module, canvas_long_side: int, atol: float, shapes: Sequence[tuple[int, int]] = CHECK_SHAPES,
    output: str = "score", canvas_version: int | None = None,
) -> OnnxExport:  # fmt: skip
    """The ONNX bytes of `module` (on CPU, eval mode) and their parity with eager at `shapes`."""
    import onnxruntime as ort

    module = module.cpu().eval()
    canvas = {"canvas_long_side": canvas_long_side, "canvas_version": canvas_version}
    try:
        data = _onnx_bytes(module, canvas_long_side, canvas_version, output)
        session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    except Exception as exc:  # any exporter/runtime failure is the gate's finding, not a crash
        error = f"{type(exc).__name__}: {exc}"[:500]
        return OnnxExport(None, float("inf"), False, list(shapes), error, **canvas)
    worst = 0.0
    generator = torch.Generator().manual_seed(1)
    for height, width in shapes:
        image = torch.rand(2, 3, height, width, generator=generator)
        with torch.no_grad():
            eager = module(image).reshape(-1).numpy()
        exported = session.run([output], {"image": image.numpy()})[0].reshape(-1)
        if exported.shape != eager.shape:
            error = f"ONNX gave {exported.shape[0]} {output} values for {eager.shape[0]} at {height}x{width}"
            return OnnxExport(data, float("inf"), False, list(shapes), error, **canvas)
        worst = max(worst, float(np.max(np.abs(exported - eager))))
    return OnnxExport(data, worst, worst <= atol, list(shapes), None, **canvas)


def onnx_latency_ms(data: bytes, photo: np.ndarray, repeats: int) -> float:
    """Median ms for the data side's scorer (one thread) to score `photo` (uint8 H x W x 3), canvas
    included; one untimed warm-up run first."""
    from pipeline.quality.scorer import QualityScorer

    with tempfile.TemporaryDirectory(prefix="crisp-onnx-") as tmp:
        path = Path(tmp) / "model.onnx"
        path.write_bytes(data)
        scorer = QualityScorer(path, threads=1)
        scorer.score_rgb(photo)
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            scorer.score_rgb(photo)
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)
