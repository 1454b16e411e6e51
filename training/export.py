"""Export an SR model to TorchScript and check the export against the eager model.

In: an `nn.Module` (N x 3 x h x w float -> N x 3 x hs x ws) and an example input. Out: an
`ExportResult` with the traced `ScriptModule`, the largest absolute output difference from the eager
model over the check inputs, and whether it is within `atol` (default 1e-5); `save_torchscript`
writes the traced module as bytes (the registry's portable artifact).

`torch.jit.trace` records one execution. Archs whose Python code depends on the input size (the
bicubic skip of residual ESPCN precomputes its taps in numpy) trace to a graph specialised to the
example's height and width, so the check runs inputs of the example's shape; `shape_generic` reports
whether a second, different size also matched, which is informational only.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class ExportResult:
    module: torch.jit.ScriptModule | None
    max_abs_diff: float
    passed: bool
    shape_generic: bool
    input_shape: tuple[int, ...]
    error: str | None = None


def _max_diff(eager: nn.Module, traced: torch.jit.ScriptModule, x: torch.Tensor) -> float:
    with torch.inference_mode():
        expected = eager(x)
        got = traced(x)
    if got.shape != expected.shape:
        return float("inf")
    return float((got - expected).abs().max().item()) if got.numel() else 0.0


def export_torchscript(
    model: nn.Module, example: torch.Tensor, atol: float = 1e-5, seed: int = 0
) -> ExportResult:
    """Trace `model` on `example` and compare it with eager on `example` and a second random input."""
    model = model.eval()
    shape = tuple(example.shape)
    generator = torch.Generator().manual_seed(seed)
    other = torch.rand(shape, generator=generator, dtype=example.dtype)
    try:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            traced = torch.jit.trace(model, example, check_trace=False)
        diff = max(_max_diff(model, traced, example), _max_diff(model, traced, other))
    except Exception as exc:  # an arch that cannot be traced fails the export gate, it does not crash
        return ExportResult(None, float("inf"), False, False, shape, f"{type(exc).__name__}: {exc}"[:300])
    resized = torch.rand((shape[0], shape[1], shape[2] + 3, shape[3] + 5), generator=generator)
    try:
        generic = _max_diff(model, traced, resized) <= atol
    except Exception:  # a size-specialised trace may raise on another size: informational only
        generic = False
    return ExportResult(traced, diff, diff <= atol, generic, shape)


def save_torchscript(module: torch.jit.ScriptModule) -> bytes:
    buffer = io.BytesIO()
    torch.jit.save(module, buffer)
    return buffer.getvalue()
