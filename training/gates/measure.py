"""Measure an SR model for the promotion gates: golden pass, quality per set, serving latency.

In: `nn.Module`s keyed by role ("model", "bicubic", "champion"), benchmark folders of HR images, optional
decoded pairs of a pair test split, a reference image. Out: plain numbers: golden-output statistics and
the problem with them (or None), mean PSNR-Y / SSIM-Y per set and role, the median latency in ms.

Quality uses the one protocol implementation: training/gates/evaluate.py for HR folders (bicubic LR made
from the modcropped HR) and `pipeline.sr_metrics` on the stored LR/HR pairs (border = scale), so
the bicubic role is the Pillow-exact `bicubic` arch run through the same code as every learned model.
Latency times the serving path itself, `training.serve.upscale.upscale_image` (tiled), after one warm-up.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pipeline.sr_metrics import psnr_y, ssim_y
from training.gates.evaluate import evaluate_folder, super_resolve
from training.serve.upscale import upscale_image

Pair = tuple[np.ndarray, np.ndarray]  # (lr, hr) uint8 HxWx3


def golden_input(size: int, seed: int = 0) -> torch.Tensor:
    """A fixed 1 x 3 x size x size image in [0, 1]: gradients, a sine, a flat square and mild noise."""
    ramp = np.linspace(0.0, 1.0, size)
    diagonal = np.add.outer(ramp, ramp)
    image = np.stack([diagonal / 2, np.outer(ramp, ramp), 0.5 + 0.4 * np.sin(6 * diagonal)])
    image[:, size // 4 : size // 2, size // 4 : size // 2] = 0.9
    image = image + np.random.default_rng(seed).normal(0.0, 0.02, image.shape)
    return torch.from_numpy(np.clip(image, 0.0, 1.0)).float()[None]


def golden_check(
    model: nn.Module, size: int, scale: int, output_range: tuple[float, float]
) -> tuple[dict[str, Any], str | None]:
    """Run the golden input; (stats, None) when the output is finite, scale x larger and in range."""
    with torch.inference_mode():
        output = model(golden_input(size))
    expected = (1, 3, size * scale, size * scale)
    finite = bool(torch.isfinite(output).all())
    stats: dict[str, Any] = {"input_shape": [1, 3, size, size], "shape": list(output.shape), "finite": finite}
    if finite:
        stats.update(min=float(output.min()), max=float(output.max()), mean=float(output.mean()))
    if tuple(output.shape) != expected:
        return stats, f"golden output shape {tuple(output.shape)} != {expected}"
    if not finite:
        return stats, "golden output holds NaN/inf"
    low, high = output_range
    if stats["min"] < low or stats["max"] > high:
        return stats, f"golden output range [{stats['min']:.3f}, {stats['max']:.3f}] outside [{low}, {high}]"
    return stats, None


def load_pair_split(
    storage: Any, recipe: str, partitions: list[str], split: str, max_pairs: int, scale: int
) -> list[Pair]:
    """Up to `max_pairs` (lr, hr) pairs of `split`, evenly spaced over the sorted catalog (deterministic)."""
    from training.data.catalog import load_catalog
    from training.data.dataset import PairReader

    rows = load_catalog(storage, recipe, partitions, scale).split(split)
    if rows.num_rows == 0:
        raise ValueError(
            f"pairs/{recipe} partitions {partitions} hold no {split!r} pairs; pick another split"
        )
    reader = PairReader(rows, storage.root, storage.options)
    picks = np.unique(np.linspace(0, rows.num_rows - 1, min(max_pairs, rows.num_rows)).astype(int))
    return [reader.read(int(i)) for i in picks]


def score_pairs(model: nn.Module, pairs: list[Pair], scale: int, device: str = "cpu") -> tuple[float, float]:
    """Mean (PSNR-Y, SSIM-Y) of `model` on stored pairs, border = scale."""
    psnrs, ssims = [], []
    for lr, hr in pairs:
        sr = super_resolve(model, lr, device)
        psnrs.append(psnr_y(sr, hr, scale))
        ssims.append(ssim_y(sr, hr, scale))
    return float(np.mean(psnrs)), float(np.mean(ssims))


def score_sets(
    models: dict[str, nn.Module],
    benchmarks: dict[str, Path],
    scale: int,
    pairs: dict[str, list[Pair]] | None = None,
    device: str = "cpu",
) -> dict[str, dict[str, Any]]:
    """{set: {"images": n, role: (psnr_y, ssim_y), ...}} for every benchmark folder and pair set."""
    results: dict[str, dict[str, Any]] = {}
    for name, folder in benchmarks.items():
        if not Path(folder).is_dir():
            raise ValueError(
                f"benchmark folder {folder} for set {name!r} does not exist; fix GateConfig.benchmarks"
            )
        scored = {role: evaluate_folder(m, Path(folder), scale, device) for role, m in models.items()}
        results[name] = {role: (r.mean_psnr_y, r.mean_ssim_y) for role, r in scored.items()}
        results[name]["images"] = len(next(iter(scored.values())).per_image)
    for name, items in (pairs or {}).items():
        results[name] = {role: score_pairs(m, items, scale, device) for role, m in models.items()}
        results[name]["images"] = len(items)
    return results


def reference_image(path: Path | None, size: int) -> np.ndarray:
    """The latency reference: the LR photo at `path`, else a deterministic synthetic size x size image."""
    if path is not None:
        from PIL import Image

        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))
    tensor = golden_input(size, seed=1)[0]
    return (tensor.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def latency_ms(
    model: nn.Module,
    image: np.ndarray,
    scale: int,
    tile: int = 256,
    overlap: int = 16,
    device: str = "cpu",
    repeats: int = 3,
) -> float:
    """Median wall time of `upscale_image` on `image` over `repeats` runs, after one warm-up run."""
    upscale_image(model, image, scale, tile, overlap, device)
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        upscale_image(model, image, scale, tile, overlap, device)
        if torch.cuda.is_available() and str(device).startswith("cuda"):
            torch.cuda.synchronize()
        timings.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(timings)
