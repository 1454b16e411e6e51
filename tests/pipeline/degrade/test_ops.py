"""Tests for pipeline.degrade.ops: PyTorch-equivalent resize, seeded noise, Pillow JPEG."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.degrade import ops


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return np.random.default_rng(0).random((37, 53, 3), dtype=np.float32)


@pytest.mark.parametrize("mode", ops.RESIZE_MODES)
@pytest.mark.parametrize("size", [(11, 17), (80, 91), (37, 20), (1, 1)])
def test_resize_matches_torch_interpolate(image: np.ndarray, mode: str, size: tuple[int, int]) -> None:
    torch = pytest.importorskip("torch")
    tensor = torch.from_numpy(image).permute(2, 0, 1)[None]
    extra = {} if mode == "area" else {"align_corners": False}
    expected = (
        torch.nn.functional.interpolate(tensor, size=size, mode=mode, **extra)[0].permute(1, 2, 0).numpy()
    )
    out = ops.resize(image, *size, mode)
    assert out.dtype == np.float32 and out.shape == (*size, 3)
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_area_resize_averages_blocks() -> None:
    img = np.arange(16, dtype=np.float32).reshape(4, 4, 1)
    np.testing.assert_allclose(ops.resize(img, 2, 2, "area")[:, :, 0], [[2.5, 4.5], [10.5, 12.5]])
    np.testing.assert_array_equal(ops.resize(img, 4, 4, "bicubic"), img)
    with pytest.raises(ValueError, match="resize mode"):
        ops.resize(img, 2, 2, "lanczos")
    with pytest.raises(ValueError, match="at least 1x1"):
        ops.resize(img, 0, 2, "area")


def test_uint8_round_trip() -> None:
    levels = np.arange(256, dtype=np.uint8).reshape(16, 16)
    np.testing.assert_array_equal(ops.to_uint8(ops.to_float(levels)), levels)
    np.testing.assert_array_equal(ops.to_uint8(np.array([-0.2, 1.3], np.float32)), [0, 255])


def test_gaussian_noise_has_the_recorded_sigma_and_seed() -> None:
    flat = np.full((200, 200, 3), 0.5, np.float32)
    noise = ops.GaussianNoise(kind="gaussian", sigma=10.0, gray=False, seed=5)
    noisy = ops.add_noise(flat, noise)
    assert float(np.std(noisy - flat) * 255) == pytest.approx(10.0, rel=0.03)
    np.testing.assert_array_equal(noisy, ops.add_noise(flat, noise))
    assert not np.array_equal(noisy, ops.add_noise(flat, noise.model_copy(update={"seed": 6})))
    gray = ops.add_noise(flat, noise.model_copy(update={"gray": True}))
    np.testing.assert_array_equal(gray[:, :, 0], gray[:, :, 2])
    assert not np.array_equal(noisy[:, :, 0], noisy[:, :, 2])


def test_poisson_noise_scales_with_intensity_and_strength() -> None:
    dark, mid = (np.full((200, 200, 3), v, np.float32) for v in (0.1, 0.5))
    noise = ops.PoissonNoise(kind="poisson", scale=0.1, gray=False, seed=1)
    std_dark = float(np.std(ops.add_noise(dark, noise) - dark))
    std_mid = float(np.std(ops.add_noise(mid, noise) - mid))
    # a flat image has a single level, so v = 1: noise = scale * (Poisson(x) - x), variance scale^2 x
    assert std_dark == pytest.approx(0.1 * math.sqrt(26 / 255), rel=0.05)
    assert std_mid == pytest.approx(0.1 * math.sqrt(128 / 255), rel=0.05)
    noise = noise.model_copy(update={"scale": 1.0})
    image = np.random.default_rng(1).random((100, 100, 3), dtype=np.float32) * 0.8 + 0.1
    weak = np.std(ops.add_noise(image, noise.model_copy(update={"scale": 0.1})) - image)
    strong = np.std(ops.add_noise(image, noise.model_copy(update={"scale": 2.0})) - image)
    assert 0 < weak < strong
    # a full-range image has 256 levels: noise std at mid-gray is sqrt(0.5 / 256) per unit scale
    assert noise.scale * 255 * math.sqrt(0.5 / 256) == pytest.approx(ops.noise_sigma_equivalent(noise))


def test_noise_params_are_validated() -> None:
    with pytest.raises(ValueError):
        ops.GaussianNoise(kind="gaussian", sigma=1.0, gray=False, seed=-1)
    with pytest.raises(ValueError):
        ops.GaussianNoise(kind="gaussian", sigma=1.0, gray=False, seed=1, scale=2.0)
    with pytest.raises(ValueError, match="sigma_range"):
        ops.NoiseConfig(sigma_range=(5.0, 1.0))
    config = ops.NoiseConfig()
    with pytest.raises(ValueError, match="noise.scale=3.5"):
        ops.check_noise(ops.PoissonNoise(kind="poisson", scale=3.5, gray=True, seed=0), config, "noise", "r")


def test_jpeg_is_deterministic_and_lossier_at_low_quality() -> None:
    image = np.random.default_rng(2).random((64, 64, 3), dtype=np.float32)
    image = ops.resize(image, 128, 128, "bicubic").clip(0, 1)
    high, low = ops.jpeg(image, 95), ops.jpeg(image, 30)
    np.testing.assert_array_equal(low, ops.jpeg(image, 30))
    assert np.abs(high - image).mean() < np.abs(low - image).mean()
    with pytest.raises(ValueError, match="quality"):
        ops.jpeg(image, 0)
