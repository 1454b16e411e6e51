"""Tests for pipeline.degrade.bicubic: the standard protocol reproduces the published bicubic baselines."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.degrade import SeedKey, bicubic_downscale, bicubic_upscale, get_recipe
from pipeline.sr_metrics import PUBLISHED_BICUBIC_Y_PSNR, modcrop, psnr_y, ssim_y

# Our upsampler is Pillow BICUBIC; the published numbers use MATLAB imresize both ways.
PUBLISHED_SSIM_X4 = {"Set5": 0.8111, "Set14": 0.7029}


def _load(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        img.load()
        return np.asarray(img)  # mode L stays HxW: scored on raw values, as the MATLAB scripts do


def _protocol_scores(folder: Path, scale: int) -> tuple[float, float]:
    recipe = get_recipe(f"bicubic_x{scale}")
    psnrs, ssims = [], []
    for path in sorted(folder.glob("*.png")):
        image = _load(path)
        hr = recipe.crop_hr(image)
        lr = recipe.apply(image, recipe.sample_params(SeedKey(path.stem)))
        sr = bicubic_upscale(lr, scale)
        psnrs.append(psnr_y(sr, hr, border=scale))
        ssims.append(ssim_y(sr, hr, border=scale))
    return float(np.mean(psnrs)), float(np.mean(ssims))


@pytest.mark.parametrize(("benchmark", "scale"), sorted(PUBLISHED_BICUBIC_Y_PSNR))
def test_protocol_reproduces_published_bicubic_baselines(
    shared_data: Path, benchmark: str, scale: int
) -> None:
    folder = shared_data / "sr_benchmarks" / benchmark
    assert len(list(folder.glob("*.png"))) == {"Set5": 5, "Set14": 14}[benchmark]
    mean_psnr, mean_ssim = _protocol_scores(folder, scale)
    assert mean_psnr == pytest.approx(PUBLISHED_BICUBIC_Y_PSNR[(benchmark, scale)], abs=0.05)
    if scale == 4:
        assert mean_ssim == pytest.approx(PUBLISHED_SSIM_X4[benchmark], abs=0.002)


def test_bridge_is_single_channel_and_kept_so(shared_data: Path) -> None:
    bridge = _load(shared_data / "sr_benchmarks" / "Set14" / "bridge.png")
    assert bridge.ndim == 2
    lr = get_recipe("bicubic_x3").apply(bridge, {})
    assert lr.shape == (bridge.shape[0] // 3, bridge.shape[1] // 3)


def test_lr_size_and_params_are_fixed() -> None:
    recipe = get_recipe("bicubic_x4")
    image = np.random.default_rng(0).integers(0, 256, (103, 77, 3), dtype=np.uint8)
    assert recipe.sample_params(SeedKey("a")) == {}
    lr = recipe.apply(image, {})
    assert lr.shape == (25, 19, 3) and lr.dtype == np.uint8
    assert recipe.crop_hr(image).shape == (100, 76, 3)
    np.testing.assert_array_equal(lr, bicubic_downscale(modcrop(image, 4), 4))


def test_constant_image_stays_constant_both_ways() -> None:
    flat = np.full((48, 48, 3), 77, np.uint8)
    assert np.all(bicubic_downscale(flat, 4) == 77)
    assert np.all(bicubic_upscale(np.full((12, 12, 3), 77, np.uint8), 4) == 77)


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError, match="multiple of scale"):
        bicubic_downscale(np.zeros((10, 12, 3), np.uint8), 4)
    with pytest.raises(ValueError, match="uint8"):
        bicubic_upscale(np.zeros((4, 4, 3), np.float32), 2)
    with pytest.raises(ValueError, match="invalid params"):
        get_recipe("bicubic_x2").apply(np.zeros((8, 8, 3), np.uint8), {"quality": 3})
    with pytest.raises(ValueError, match="uint8 HxWx3"):
        get_recipe("bicubic_x2").apply(np.zeros((8, 8, 4), np.uint8), {})
