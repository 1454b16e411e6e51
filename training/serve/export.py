"""Export an SR model to TorchScript and check the export against the eager model at several sizes.

In: an `nn.Module` (N x 3 x h x w float -> N x 3 x hs x ws), an example input, a tolerance `atol`
(default 1e-5) and the odd check sizes (H, W) (default 37 x 53 and 211 x 97). Out: an `ExportResult`
with the traced `ScriptModule`, the largest absolute output difference from the eager model over all
check inputs, the shapes checked, and whether every one was within `atol`; `save_torchscript` writes
the traced module as bytes (the registry's portable artifact).

`torch.jit.trace` records one execution, on the example. The check runs the example, a second random
input of its shape, and one random input per check size: an arch whose Python code depends on the input
size traces to a graph specialised to the example's height and width, and then fails the check (the
serving pyfunc, training/serve/serving_pyfunc.py, accepts any size, so an export must hold at every size).
`shape_generic` is true when every check size, besides the example's, matched.
"""

from __future__ import annotations

import io
import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

logger = logging.getLogger(__name__)

DEFAULT_CHECK_SIZES: tuple[tuple[int, int], ...] = ((37, 53), (211, 97))


@dataclass(frozen=True)
class ExportResult:
    """`max_abs_diff` is the maximum over `checked_shapes` (the example's first; `diffs` holds one value
    per shape, inf where the traced module raised or returned the wrong shape). `passed`: every diff is
    <= atol. `error`: why tracing failed (then `module` is None), or which check sizes raised."""

    module: torch.jit.ScriptModule | None
    max_abs_diff: float
    passed: bool
    shape_generic: bool
    input_shape: tuple[int, ...]
    error: str | None = None
    checked_shapes: tuple[tuple[int, ...], ...] = ()
    diffs: tuple[float, ...] = ()


def _max_diff(eager: nn.Module, traced: torch.jit.ScriptModule, x: torch.Tensor) -> float:
    """Largest |traced - eager| on `x`; inf for a wrong shape or a NaN difference."""
    with torch.inference_mode():
        expected = eager(x)
        got = traced(x)
    if got.shape != expected.shape:
        return float("inf")
    diff = float((got - expected).abs().max().item()) if got.numel() else 0.0
    return diff if diff == diff else float("inf")


def export_torchscript(
    model: nn.Module,
    example: torch.Tensor,
    atol: float = 1e-5,
    seed: int = 0,
    check_sizes: Sequence[tuple[int, int]] = DEFAULT_CHECK_SIZES,
) -> ExportResult:
    """Trace `model` on `example`; compare it with eager on `example`, a second random input of the
    same shape and a random input of each (H, W) in `check_sizes` (batch and channels of `example`)."""
    model = model.eval()
    shape = tuple(example.shape)
    generator = torch.Generator().manual_seed(seed)
    try:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            traced = torch.jit.trace(model, example, check_trace=False)
        same_shape = torch.rand(shape, generator=generator, dtype=example.dtype)
        example_diff = max(_max_diff(model, traced, example), _max_diff(model, traced, same_shape))
    except Exception as exc:  # an arch that cannot be traced fails the export gate, it does not crash
        message = f"{type(exc).__name__}: {exc}"[:300]
        return ExportResult(None, float("inf"), False, False, shape, message, (shape,), (float("inf"),))
    sizes, size_diffs, errors = [], [], []
    for height, width in check_sizes:
        size_shape = (*shape[:-2], int(height), int(width))
        x = torch.rand(size_shape, generator=generator, dtype=example.dtype)
        try:
            size_diffs.append(_max_diff(model, traced, x))
        except Exception as exc:  # a size-specialised trace may raise on another size: it fails the gate
            size_diffs.append(float("inf"))
            last_line = (str(exc).strip().splitlines() or [""])[-1]  # TorchScript puts the cause last
            last_line = last_line.removeprefix(f"{type(exc).__name__}: ")
            errors.append(f"{height}x{width}: {type(exc).__name__}: {last_line}"[:300])
        sizes.append(size_shape)
    generic = bool(sizes) and all(diff <= atol for diff in size_diffs)
    mismatched = [s for s, diff in zip(sizes, size_diffs, strict=True) if diff > atol]
    if mismatched:
        logger.warning(
            "TorchScript traced at %s does not match eager at %s (max abs diff %.3g, atol %.3g)",
            shape,
            mismatched,
            max(size_diffs),
            atol,
        )
    diffs = (example_diff, *size_diffs)
    return ExportResult(
        module=traced,
        max_abs_diff=max(diffs),
        passed=all(diff <= atol for diff in diffs),
        shape_generic=generic,
        input_shape=shape,
        error="; ".join(errors) or None,
        checked_shapes=(shape, *sizes),
        diffs=diffs,
    )


def save_torchscript(module: torch.jit.ScriptModule) -> bytes:
    buffer = io.BytesIO()
    torch.jit.save(module, buffer)
    return buffer.getvalue()
