"""Checkpoints for the validate / registry / upscale / report tests, in the format of COMMON.md.

In: an arch name, a scale and weights (random, trained here, or tampered with). Out: `.ckpt` files as
Lightning writes them: {"state_dict": {"model.<name>": tensor}, "hyper_parameters": plain dicts,
"crisp_meta": {...}, optional "ema_state_dict"}, loadable with `torch.load(weights_only=True)`.

`trained_espcn_state(t91)` trains a residual ESPCN x4 for 150 Adam steps on random 72 px crops of T91
(about 5 s on one CPU thread), enough to beat bicubic on Set5 and Set14 by about 0.4-0.6 dB; it is
cached per test session so every test module shares one training run.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from pipeline.degrade.bicubic import bicubic_downscale
from training.archs import build_arch

TRAINED_ARCH_KWARGS: dict[str, Any] = {"residual": True}


def crisp_meta(
    arch: str, scale: int, arch_kwargs: dict[str, Any] | None = None, **lineage: Any
) -> dict[str, Any]:
    meta = {
        "model": {"arch": arch, "scale": scale, "arch_kwargs": dict(arch_kwargs or {})},
        "data_manifest_hash": "sha256:test-manifest",
        "recipe": f"bicubic_x{scale}",
        "schema_version": 1,
        "code_version": "test",
        "pair_partitions": ["pairs/bicubic_x4/2026-01-01"],
    }
    meta.update(lineage)
    return meta


def write_checkpoint(
    path: Path,
    state_dict: dict[str, torch.Tensor],
    arch: str = "espcn",
    scale: int = 4,
    arch_kwargs: dict[str, Any] | None = None,
    ema_state_dict: dict[str, torch.Tensor] | None = None,
    meta: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Save a Lightning-style checkpoint; `meta=None` writes a consistent crisp_meta, `{}` none at all."""
    checkpoint: dict[str, Any] = {
        "epoch": 0,
        "global_step": 150,
        "pytorch-lightning_version": "2.6.6",
        "state_dict": {f"model.{k}": v for k, v in state_dict.items()},
        "hyper_parameters": {
            "model": {"arch": arch, "scale": scale, "arch_options": dict(arch_kwargs or {})},
            "optim": {"lr": 1e-3},
        },
    }
    if meta is None:
        meta = crisp_meta(arch, scale, arch_kwargs)
    if meta:
        checkpoint["crisp_meta"] = meta
    if ema_state_dict is not None:
        checkpoint["ema_state_dict"] = ema_state_dict
    checkpoint.update(extra or {})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, path)
    return path


def random_state(
    arch: str = "espcn", scale: int = 4, seed: int = 0, **arch_kwargs: Any
) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return {k: v.clone() for k, v in build_arch(arch, scale, **arch_kwargs).state_dict().items()}


def _crops(images: list[np.ndarray], rng: np.random.Generator, count: int, hr_size: int, scale: int):
    lrs, hrs = [], []
    for _ in range(count):
        image = images[rng.integers(len(images))]
        y = rng.integers(0, image.shape[0] - hr_size + 1)
        x = rng.integers(0, image.shape[1] - hr_size + 1)
        hr = np.ascontiguousarray(image[y : y + hr_size, x : x + hr_size])
        if rng.random() < 0.5:
            hr = np.ascontiguousarray(hr[:, ::-1])
        lrs.append(bicubic_downscale(hr, scale))
        hrs.append(hr)

    def to_tensor(batch: list[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.stack(batch)).permute(0, 3, 1, 2).float() / 255.0

    return to_tensor(lrs), to_tensor(hrs)


@functools.lru_cache(maxsize=4)
def trained_espcn_state(
    t91: Path, scale: int = 4, steps: int = 150, seed: int = 0
) -> dict[str, torch.Tensor]:
    """Weights of a residual ESPCN trained briefly on T91 (deterministic for a given seed)."""
    paths = sorted(Path(t91).glob("*.png"))
    if not paths:
        raise FileNotFoundError(f"no T91 images in {t91}")
    images = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    rng = np.random.default_rng(seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(int(os.environ.get("CRISP_TEST_TRAIN_THREADS", "1")))  # 2 threads thrash here
    try:
        torch.manual_seed(seed)
        model = build_arch("espcn", scale, **TRAINED_ARCH_KWARGS)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        for _ in range(steps):
            lr, hr = _crops(images, rng, 16, 18 * scale, scale)
            loss = torch.nn.functional.l1_loss(model(lr), hr)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    finally:
        torch.set_num_threads(threads)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def trained_checkpoint(path: Path, t91: Path, scale: int = 4, ema: bool = True, **meta: Any) -> Path:
    """A checkpoint of the trained ESPCN; with `ema` the trained weights sit in ema_state_dict and the
    live state_dict holds a perturbed copy, so a test can tell which one was loaded."""
    state = trained_espcn_state(Path(t91), scale)
    live = {k: v + 0.05 for k, v in state.items()} if ema else state
    return write_checkpoint(
        path,
        live,
        "espcn",
        scale,
        TRAINED_ARCH_KWARGS,
        ema_state_dict=state if ema else None,
        meta=crisp_meta("espcn", scale, TRAINED_ARCH_KWARGS, **meta),
    )
