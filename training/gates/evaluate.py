"""Evaluate an SR model on a benchmark folder of HR images with the standard protocol.

In: an `nn.Module` (N x 3 x h x w float [0, 1] -> N x 3 x hs x ws), a folder of HR images (Set5,
Set14, ...), the scale. Out: `EvalResult` with per-image (PSNR-Y, SSIM-Y) and their means.

Protocol, the one the published tables use: HR modcropped to a multiple of the scale; LR made from it
by `pipeline.degrade.bicubic.bicubic_downscale` (Pillow BICUBIC, antialiased); the model runs on the
LR one image at a time (sizes differ); its output is quantized to uint8 (round, clamp) and scored with
`pipeline.sr_metrics.psnr_y` / `ssim_y`, border = scale, the same code as validation and pair labels.

Single-channel HR images (mode L, e.g. Set14 `bridge.png`) are scored on their raw values, as the
MATLAB scripts do: the model gets a 3-channel replica of the gray LR, the mean of its three output
channels is quantized and compared, single-channel, with the gray HR. For the `bicubic` arch the
three channels are identical, so this is exactly Pillow's gray upscale, and the published numbers
come out. Any other mode (RGBA, P, I;16) is converted to RGB first.

The model is switched to eval mode and moved to `device` for the call; its training flag is restored.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from pipeline.degrade.bicubic import bicubic_downscale
from pipeline.sr_metrics import modcrop, psnr_y, ssim_y

IMAGE_SUFFIXES = (".png", ".bmp", ".tif", ".tiff", ".jpg", ".jpeg")


@dataclass(frozen=True)
class EvalResult:
    per_image: dict[str, tuple[float, float]]  # file name -> (psnr_y dB, ssim_y)
    mean_psnr_y: float
    mean_ssim_y: float


def load_hr(path: Path) -> np.ndarray:
    """HR as uint8: HxW for single-channel images (kept raw), HxWx3 for everything else."""
    with Image.open(path) as img:
        if img.mode not in ("L", "RGB"):
            img = img.convert("RGB")
        return np.asarray(img)


def super_resolve(model: nn.Module, lr: np.ndarray, device: torch.device | str = "cpu") -> np.ndarray:
    """Run `model` on one uint8 LR (HxW or HxWx3); uint8 output of the same layout, scale times larger."""
    gray = lr.ndim == 2
    rgb = np.repeat(lr[..., None], 3, axis=2) if gray else lr
    x = (
        torch.tensor(rgb).permute(2, 0, 1)[None].to(device, torch.float32) / 255.0
    )  # copies: PIL arrays are read-only
    with torch.inference_mode():
        out = model(x)[0].float()
    if gray:
        out = out.mean(dim=0, keepdim=True)
    levels = torch.round(out.clamp(0.0, 1.0) * 255.0).to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return levels[..., 0] if gray else levels


def evaluate_folder(
    model: nn.Module, folder: Path, scale: int, device: torch.device | str = "cpu"
) -> EvalResult:
    """Score `model` at `scale` on every HR image in `folder` (sorted by name)."""
    folder = Path(folder)
    paths = (
        sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if folder.is_dir() else []
    )
    if not paths:
        raise ValueError(f"no HR images ({', '.join(IMAGE_SUFFIXES)}) found in benchmark folder {folder}")
    if scale < 1:
        raise ValueError(f"scale must be >= 1, got {scale}")
    was_training = model.training
    model.to(device).eval()
    per_image: dict[str, tuple[float, float]] = {}
    try:
        for path in paths:
            hr = np.ascontiguousarray(modcrop(load_hr(path), scale))
            sr = super_resolve(model, bicubic_downscale(hr, scale), device)
            if sr.shape != hr.shape:
                raise ValueError(f"model output {sr.shape} for {path.name} does not match the HR {hr.shape}")
            per_image[path.name] = (psnr_y(sr, hr, border=scale), ssim_y(sr, hr, border=scale))
    finally:
        model.train(was_training)
    psnrs, ssims = zip(*per_image.values(), strict=True)
    return EvalResult(
        per_image=per_image, mean_psnr_y=float(np.mean(psnrs)), mean_ssim_y=float(np.mean(ssims))
    )
