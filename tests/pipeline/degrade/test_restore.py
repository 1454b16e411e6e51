"""Tests for pipeline.degrade.restore: same-size noise, blur, JPEG and mixed recipes, both versions."""

from __future__ import annotations

import hashlib
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


@pytest.mark.parametrize(
    "name,version",
    [(f"restore_x1_{k}", v) for k in ("noise", "blur", "jpeg") for v in (1, 2)] + [("restore_x1_mixed", 1)],
)
def test_same_size_degraded_output(image: np.ndarray, name: str, version: int) -> None:
    recipe = get_recipe(name, version=version)
    assert recipe.scale == 1 and recipe.version == version
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
    noises = [noise.sample_params(k)["noise"] for k in keys]
    assert set(Counter(n["kind"] for n in noises)) == {"gaussian", "poisson"}
    sigmas = [n["sigma"] for n in noises if n["kind"] == "gaussian"]
    assert min(sigmas) < 5 and max(sigmas) > 70  # version 2: AWGN sigma 0..75
    assert set(Counter(blur.sample_params(k)["blur"]["kind"] for k in keys)) >= {"iso", "aniso", "sinc"}
    drawn = [jpeg.sample_params(k) for k in keys]
    qualities = {p["quality"] for p in drawn}
    assert min(qualities) == 10 and max(qualities) == 95 and len(qualities) > 75
    doubles = [p["double"] for p in drawn if p["double"] is not None]
    assert len(doubles) / len(drawn) == pytest.approx(0.3, abs=0.06)
    assert {d["shift_y"] for d in doubles} == {d["shift_x"] for d in doubles} == set(range(1, 8))
    v1 = get_recipe("restore_x1_jpeg", version=1).sample_params(keys[0])
    assert set(v1) == {"quality"}  # version 1 draws what it always drew


# sha256 over the sampled params and outputs of variants 0..3 of "img", made before version 2 existed
V1_DIGESTS = {
    "restore_x1_noise": "a41d94bc71271c0443887ab3381a4265515a754bd216c138a51aee1e33e116e8",
    "restore_x1_blur": "a6972dbc4035a2858bcd6aa061e78e1c4005ff156f797a3f943e4d40cca22299",
    "restore_x1_jpeg": "c71f541da6030d142a28bff17a47d20210032c8df2a4099a4378017bf2bade56",
}


@pytest.mark.parametrize("name", sorted(V1_DIGESTS))
def test_version_1_still_samples_and_makes_the_same_bytes(image: np.ndarray, name: str) -> None:
    recipe, digest = get_recipe(name, version=1), hashlib.sha256()
    for variant in range(4):
        params = recipe.sample_params(SeedKey("img", variant))
        digest.update(repr(sorted(params.items())).encode())
        digest.update(recipe.apply(image, params).tobytes())
    assert digest.hexdigest() == V1_DIGESTS[name]


def test_double_jpeg_is_off_grid_and_stays_aligned(image: np.ndarray) -> None:
    recipe = get_recipe("restore_x1_jpeg")
    single = recipe.apply(image, {"quality": 60, "double": None})
    double = {"quality": 60, "double": {"quality": 60, "shift_y": 3, "shift_x": 5}}
    twice = recipe.apply(image, double)
    assert twice.shape == image.shape and not np.array_equal(twice, single)
    assert psnr_y(twice, image) < psnr_y(single, image)  # a second, shifted grid adds its own artifacts
    assert (
        recipe.severity({"quality": 80, "double": {"quality": 35, "shift_y": 1, "shift_x": 1}}).jpeg_quality
        == 35
    )
    with pytest.raises(ValueError, match="double.shift_x=8 is outside"):
        recipe.apply(image, {"quality": 60, "double": {"quality": 60, "shift_y": 1, "shift_x": 8}})
    with pytest.raises(ValueError, match="double JPEG contradicts double_prob=0"):
        get_recipe("restore_x1_jpeg", version=1).apply(image, double)


def test_mixed_chain_degrades_by_all_three_and_reports_them(image: np.ndarray) -> None:
    recipe = get_recipe("restore_x1_mixed")
    params = {
        "blur": {"kind": "iso", "size": 9, "sigma_x": 1.5, "sigma_y": 1.5, "theta": 0.0},
        "resize": {"direction": "keep", "factor": 1.0, "mode": "area"},
        "noise": {"kind": "gaussian", "sigma": 12.0, "gray": False, "seed": 4},
        "jpeg_quality": 40,
    }
    out = recipe.apply(image, params)
    jpeg_only = get_recipe("restore_x1_jpeg").apply(image, {"quality": 40, "double": None})
    assert out.shape == image.shape and psnr_y(out, image) < psnr_y(jpeg_only, image)
    severity = recipe.severity(params)
    assert (severity.noise_sigma, severity.jpeg_quality) == (12.0, 40) and severity.blur_sigma > 1.0
    with pytest.raises(ValueError, match="keeps the size"):
        get_recipe("restore_x1_mixed", {"resize_probs": [0.2, 0.7, 0.1]})


def test_out_of_range_params_raise(image: np.ndarray) -> None:
    with pytest.raises(ValueError, match="noise.sigma=80.0 is outside"):
        get_recipe("restore_x1_noise").apply(
            image, {"noise": {"kind": "gaussian", "sigma": 80.0, "gray": False, "seed": 1}}
        )
    with pytest.raises(ValueError, match="blur.size=23"):
        get_recipe("restore_x1_blur").apply(
            image, {"blur": {"kind": "iso", "size": 23, "sigma_x": 1.0, "sigma_y": 1.0, "theta": 0.0}}
        )
    with pytest.raises(ValueError, match="quality_range"):
        get_recipe("restore_x1_jpeg", {"quality_range": [0, 50]})
    with pytest.raises(ValueError, match="has versions \\(1, 2\\), not 3"):
        get_recipe("restore_x1_noise", version=3)
