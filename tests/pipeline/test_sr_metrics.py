"""Tests for pipeline.sr_metrics: the one SR evaluation protocol (Y channel, shave, PSNR, SSIM)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage.metrics import structural_similarity

from pipeline.degrade import SeedKey, bicubic_upscale, get_recipe
from pipeline.sr_metrics import (
    PSNR_CAP_DB,
    modcrop,
    psnr_of_y,
    psnr_ssim_y,
    psnr_y,
    rgb_to_y,
    shave,
    ssim_of_y,
    ssim_y,
    y_planes,
)

# float32 planes against the protocol in float64 (module docstring, Precision)
PSNR_ATOL_DB = 1e-5
SSIM_ATOL = 5e-5


def _y64(img: np.ndarray) -> np.ndarray:
    """MATLAB rgb2ycbcr luma in float64, written out: the oracle for the float32 planes."""
    arr = img.astype(np.float64)
    if arr.ndim == 2:
        return arr
    return 16.0 + (65.481 * arr[..., 0] + 128.553 * arr[..., 1] + 24.966 * arr[..., 2]) / 255.0


def _noisy_pair(seed: int, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    hr = rng.integers(0, 256, size=shape, dtype=np.uint8)
    sr = np.clip(hr.astype(np.int16) + rng.integers(-20, 21, size=shape), 0, 255).astype(np.uint8)
    return sr, hr


def test_rgb_to_y_matches_matlab_studio_range() -> None:
    pixels = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255]]], dtype=np.uint8)
    y = rgb_to_y(pixels)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y[0], [16.0, 235.0, 16 + 65.481, 16 + 128.553, 16 + 24.966], atol=3e-5)
    colours = np.random.default_rng(5).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    np.testing.assert_allclose(rgb_to_y(colours), _y64(colours), atol=3e-5)  # float32 ulp at 235 is 1.5e-5


def test_single_channel_is_scored_on_raw_values() -> None:
    gray = np.array([[0, 128, 255]], dtype=np.uint8)
    np.testing.assert_array_equal(rgb_to_y(gray), [[0.0, 128.0, 255.0]])
    with pytest.raises(ValueError, match="HxW or HxWx3"):
        rgb_to_y(np.zeros((2, 2, 4), np.uint8))


def test_modcrop_and_shave() -> None:
    img = np.zeros((31, 50, 3), np.uint8)
    assert modcrop(img, 4).shape == (28, 48, 3)
    assert modcrop(img, 1).shape == img.shape
    assert shave(img, 3).shape == (25, 44, 3)
    assert shave(img, 0) is img
    with pytest.raises(ValueError, match="too small"):
        shave(img, 16)
    with pytest.raises(ValueError, match="scale"):
        modcrop(img, 0)


def test_psnr_of_a_constant_offset_on_gray() -> None:
    hr = np.full((20, 20), 100, np.uint8)
    sr = hr + 1
    assert psnr_y(sr, hr) == pytest.approx(10 * math.log10(255**2), abs=1e-9)
    assert psnr_y(hr, hr) == PSNR_CAP_DB


def test_psnr_border_ignores_the_shaved_pixels() -> None:
    hr = np.full((20, 20, 3), 120, np.uint8)
    sr = hr.copy()
    sr[:2] = 0  # damage only the top border rows
    assert psnr_y(sr, hr, border=2) == PSNR_CAP_DB
    assert psnr_y(sr, hr, border=1) < 30


@pytest.mark.parametrize("shape", [(64, 80), (48, 72, 3)])
def test_ssim_matches_scikit_image_gaussian_ssim(shape: tuple[int, ...]) -> None:
    sr, hr = _noisy_pair(1, shape)
    expected = structural_similarity(
        _y64(sr),
        _y64(hr),
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=255.0,
    )
    assert ssim_y(sr, hr) == pytest.approx(expected, abs=SSIM_ATOL)
    assert ssim_y(hr, hr) == pytest.approx(1.0, abs=1e-6)


def test_bad_inputs_raise_clearly() -> None:
    sr, hr = _noisy_pair(2, (32, 32, 3))
    with pytest.raises(ValueError, match="same shape"):
        psnr_y(sr[:-1], hr)
    with pytest.raises(ValueError, match="uint8"):
        psnr_y(sr.astype(np.float32), hr)
    with pytest.raises(ValueError, match="11x11"):
        ssim_y(sr[:12, :12], hr[:12, :12], border=1)


def _reference_psnr_ssim(sr: np.ndarray, hr: np.ndarray, border: int) -> tuple[float, float]:
    """The textbook protocol in float64: five-plane SSIM (var(sr), var(hr), covariance each filtered), as
    BasicSR writes it, and PSNR of the float64 planes."""
    from scipy import ndimage

    sr_y, hr_y = shave(_y64(sr), border), shave(_y64(hr), border)
    taps = np.exp(-((np.arange(11) - 5.0) ** 2) / (2 * 1.5**2))
    taps /= taps.sum()

    def blur(plane: np.ndarray) -> np.ndarray:
        out = ndimage.correlate1d(ndimage.correlate1d(plane, taps, axis=0), taps, axis=1)
        return out[5:-5, 5:-5]

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_x, mu_y = blur(sr_y), blur(hr_y)
    var_x, var_y = blur(sr_y**2) - mu_x**2, blur(hr_y**2) - mu_y**2
    cov = blur(sr_y * hr_y) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    psnr = 10 * math.log10(255.0**2 / float(np.mean((sr_y - hr_y) ** 2)))
    return psnr, float(ssim_map.mean())


@pytest.mark.parametrize("shape", [(40, 56), (64, 48, 3)])
def test_scores_from_y_planes_converted_once_equal_the_pair_functions(shape: tuple[int, ...]) -> None:
    sr, hr = _noisy_pair(3, shape)
    sr_y, hr_y = y_planes(sr, hr, border=2)
    assert sr_y.shape == hr_y.shape == (shape[0] - 4, shape[1] - 4) and sr_y.dtype == np.float32
    assert psnr_of_y(sr_y, hr_y) == psnr_y(sr, hr, border=2)
    assert ssim_of_y(sr_y, hr_y) == ssim_y(sr, hr, border=2)
    assert psnr_ssim_y(sr, hr, border=2) == (psnr_y(sr, hr, border=2), ssim_y(sr, hr, border=2))
    # the four-plane float32 filtering (sum of squares filtered once) is the five-plane float64 formula
    reference_psnr, reference_ssim = _reference_psnr_ssim(sr, hr, 2)
    assert psnr_y(sr, hr, border=2) == pytest.approx(reference_psnr, abs=PSNR_ATOL_DB)
    assert ssim_y(sr, hr, border=2) == pytest.approx(reference_ssim, abs=SSIM_ATOL)
    assert psnr_ssim_y(hr, hr) == (PSNR_CAP_DB, pytest.approx(1.0, abs=1e-6))


@pytest.mark.parametrize("recipe_name", ["bicubic_x4", "realworld_x4"])
def test_float32_scores_stay_within_the_documented_bounds_of_float64_on_real_images(
    shared_data: Path, recipe_name: str
) -> None:
    recipe = get_recipe(recipe_name)
    photos = sorted((shared_data / "sr_benchmarks" / "Set14").glob("*.png"))[:6]
    photos += sorted((shared_data / "products" / "magento_luma").glob("*.jpg"))[:2]
    for path in photos:
        with Image.open(path) as img:
            image = np.asarray(img.convert("RGB"))[:320, :320]  # small crops keep the scipy oracle quick
        hr = recipe.crop_hr(image)
        sr = bicubic_upscale(recipe.apply(image, recipe.sample_params(SeedKey(path.stem))), recipe.scale)
        reference_psnr, reference_ssim = _reference_psnr_ssim(sr, hr, recipe.scale)
        psnr, ssim = psnr_ssim_y(sr, hr, border=recipe.scale)
        assert psnr == pytest.approx(reference_psnr, abs=PSNR_ATOL_DB), path.name
        assert ssim == pytest.approx(reference_ssim, abs=SSIM_ATOL), path.name


def test_y_plane_functions_refuse_mismatched_planes() -> None:
    sr, hr = _noisy_pair(4, (32, 32, 3))
    sr_y, hr_y = y_planes(sr, hr)
    with pytest.raises(ValueError, match="same shape"):
        psnr_of_y(sr_y[:-1], hr_y)
    with pytest.raises(ValueError, match="same shape"):
        ssim_of_y(sr_y, hr_y[:, :-1])
    with pytest.raises(ValueError, match="HxW"):
        ssim_of_y(rgb_to_y(sr)[..., None], rgb_to_y(hr)[..., None])
    with pytest.raises(ValueError, match="uint8"):
        psnr_ssim_y(sr.astype(np.float32), hr)
