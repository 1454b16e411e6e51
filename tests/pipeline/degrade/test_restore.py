"""Tests for pipeline.degrade.restore: same-size noise, blur and JPEG recipes."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from pipeline.degrade import SeedKey, get_recipe
from pipeline.sr_metrics import psnr_y


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    """A smooth synthetic image with edges: gradients plus a bright square."""
    yy, xx = np.mgrid[0:96, 0:128]
    img = np.stack([xx * 2, yy * 2, (xx + yy)], axis=-1).astype(np.float64)
    img[30:60, 40:90] = 230
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("name", ["restore_x1_noise", "restore_x1_blur", "restore_x1_jpeg"])
def test_same_size_degraded_output(image: np.ndarray, name: str) -> None:
    recipe = get_recipe(name)
    assert recipe.scale == 1
    params = recipe.sample_params(SeedKey("img", 0))
    out = recipe.apply(image, params)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert not np.array_equal(out, image)
    assert recipe.apply(image, params).tobytes() == out.tobytes()


def test_noise_strength_orders_psnr(image: np.ndarray) -> None:
    recipe = get_recipe("restore_x1_noise")
    scores = [
        psnr_y(
            recipe.apply(image, {"noise": {"kind": "gaussian", "sigma": s, "gray": False, "seed": 1}}), image
        )
        for s in (2.0, 10.0, 30.0)
    ]
    assert scores == sorted(scores, reverse=True)
    assert (
        recipe.severity({"noise": {"kind": "gaussian", "sigma": 10.0, "gray": False, "seed": 1}}).noise_sigma
        == 10.0
    )


def test_blur_strength_orders_psnr(image: np.ndarray) -> None:
    recipe = get_recipe("restore_x1_blur")
    params = [
        {"blur": {"kind": "iso", "size": 21, "sigma_x": s, "sigma_y": s, "theta": 0.0}}
        for s in (0.5, 1.5, 3.0)
    ]
    scores = [psnr_y(recipe.apply(image, p), image) for p in params]
    assert scores == sorted(scores, reverse=True)
    sigmas = [recipe.severity(p).blur_sigma for p in params]
    assert sigmas == sorted(sigmas) and sigmas[1] == pytest.approx(1.5, rel=1e-3)


def test_jpeg_quality_orders_psnr(image: np.ndarray) -> None:
    recipe = get_recipe("restore_x1_jpeg")
    scores = [psnr_y(recipe.apply(image, {"quality": q}), image) for q in (95, 60, 30)]
    assert scores == sorted(scores, reverse=True)
    assert recipe.severity({"quality": 42}).jpeg_quality == 42


def test_sampling_covers_the_configured_ranges() -> None:
    noise, blur, jpeg = (get_recipe(f"restore_x1_{k}") for k in ("noise", "blur", "jpeg"))
    keys = [SeedKey(f"i{i}") for i in range(600)]
    kinds = Counter(noise.sample_params(k)["noise"]["kind"] for k in keys)
    assert set(kinds) == {"gaussian", "poisson"}
    assert set(Counter(blur.sample_params(k)["blur"]["kind"] for k in keys)) >= {"iso", "aniso", "sinc"}
    qualities = {jpeg.sample_params(k)["quality"] for k in keys}
    assert min(qualities) == 30 and max(qualities) == 95 and len(qualities) > 55


def test_out_of_range_params_raise(image: np.ndarray) -> None:
    with pytest.raises(ValueError, match="noise.sigma=40.0 is outside"):
        get_recipe("restore_x1_noise").apply(
            image, {"noise": {"kind": "gaussian", "sigma": 40.0, "gray": False, "seed": 1}}
        )
    with pytest.raises(ValueError, match="blur.size=23"):
        get_recipe("restore_x1_blur").apply(
            image, {"blur": {"kind": "iso", "size": 23, "sigma_x": 1.0, "sigma_y": 1.0, "theta": 0.0}}
        )
    with pytest.raises(ValueError, match="quality_range"):
        get_recipe("restore_x1_jpeg", {"quality_range": [0, 50]})
