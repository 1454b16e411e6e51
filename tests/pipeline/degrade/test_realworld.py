"""Tests for pipeline.degrade.realworld: Real-ESRGAN second-order degradation, seeded and recorded."""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.degrade import SeedKey, get_recipe, ops
from pipeline.degrade.realworld import RealworldConfig, StageConfig
from pipeline.sr_metrics import psnr_y

N_SEEDS = 2000


@pytest.fixture(scope="module")
def samples() -> list[dict]:
    recipe = get_recipe("realworld_x4")
    return [recipe.sample_params(SeedKey(f"image-{i}", variant=i % 3)) for i in range(N_SEEDS)]


@pytest.fixture(scope="module")
def photo(product_photos: Path) -> np.ndarray:
    path = sorted(product_photos.glob("*.jpg"))[0]
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))[200:392, 300:492]  # 192x192 crop of a real photo


def _covers(values: list[float], low: float, high: float, bins: int = 8) -> None:
    """Every value lies in [low, high] and each of `bins` equal bins of the range is hit."""
    assert values, "no samples"
    arr = np.asarray(values, dtype=np.float64)
    assert arr.min() >= low and arr.max() <= high, (arr.min(), arr.max(), low, high)
    counts, _ = np.histogram(arr, bins=bins, range=(low, high))
    assert np.all(counts > 0), counts


def _kernels(samples: list[dict], where: str) -> list[dict]:
    return [s[where]["blur"] for s in samples if s[where]["blur"] is not None]


@pytest.mark.parametrize("stage", ["stage1", "stage2"])
def test_sampled_blur_stays_in_range_and_covers_it(samples: list[dict], stage: str) -> None:
    config = RealworldConfig()
    blur_config = getattr(config, stage).blur
    blurs = _kernels(samples, stage)
    assert len(blurs) / N_SEEDS == pytest.approx(getattr(config, stage).blur_prob, abs=0.03)
    assert set(Counter(k["kind"] for k in blurs)) == {*blur_config.kernel_kinds, "sinc"}
    assert {k["size"] for k in blurs} == set(blur_config.kernel_sizes)
    gaussian = [k for k in blurs if k["kind"] != "sinc"]
    aniso = [k for k in gaussian if k["kind"].endswith("aniso")]
    _covers([k["sigma_x"] for k in gaussian], *blur_config.sigma_range, bins=10)
    _covers([k["sigma_y"] for k in aniso], *blur_config.sigma_range)
    _covers([k["theta"] for k in aniso], -math.pi, math.pi)
    _covers(
        [k["beta"] for k in gaussian if k["kind"].startswith("generalized")], *blur_config.betag_range, bins=5
    )
    _covers(
        [k["beta"] for k in gaussian if k["kind"].startswith("plateau")], *blur_config.betap_range, bins=4
    )
    sincs = [k for k in blurs if k["kind"] == "sinc"]
    _covers([k["omega_c"] for k in sincs if k["size"] < 13], *blur_config.sinc_omega_small, bins=3)
    _covers([k["omega_c"] for k in sincs if k["size"] >= 13], *blur_config.sinc_omega_large, bins=3)


@pytest.mark.parametrize("stage", ["stage1", "stage2"])
def test_sampled_resize_noise_and_jpeg_cover_their_ranges(samples: list[dict], stage: str) -> None:
    config: StageConfig = getattr(RealworldConfig(), stage)
    resizes = [s[stage]["resize"] for s in samples]
    directions = Counter(r["direction"] for r in resizes)
    for direction, prob in zip(("up", "down", "keep"), config.resize_probs, strict=True):
        assert directions[direction] / N_SEEDS == pytest.approx(prob, abs=0.04)
    low, high = config.resize_range
    _covers([r["factor"] for r in resizes if r["direction"] == "up"], 1.0, high)
    _covers([r["factor"] for r in resizes if r["direction"] == "down"], low, 1.0)
    assert {r["factor"] for r in resizes if r["direction"] == "keep"} == {1.0}
    assert set(Counter(r["mode"] for r in resizes)) == {"area", "bilinear", "bicubic"}

    noises = [s[stage]["noise"] for s in samples]
    gaussian = [n["sigma"] for n in noises if n["kind"] == "gaussian"]
    assert len(gaussian) / N_SEEDS == pytest.approx(config.noise.gaussian_prob, abs=0.04)
    _covers(gaussian, *config.noise.sigma_range, bins=10)
    _covers(
        [n["scale"] for n in noises if n["kind"] == "poisson"], *config.noise.poisson_scale_range, bins=10
    )
    assert sum(n["gray"] for n in noises) / N_SEEDS == pytest.approx(config.noise.gray_prob, abs=0.04)
    assert len({n["seed"] for n in noises}) == N_SEEDS

    qualities = [s[stage]["jpeg_quality"] for s in samples]
    assert set(qualities) == set(range(config.jpeg_range[0], config.jpeg_range[1] + 1))


def test_final_step_covers_orders_modes_and_sinc(samples: list[dict]) -> None:
    config = RealworldConfig()
    assert set(Counter(s["final_order"] for s in samples)) == {"sinc_then_jpeg", "jpeg_then_sinc"}
    assert set(Counter(s["final_resize_mode"] for s in samples)) == set(config.resize_modes)
    sincs = [s["final_sinc"] for s in samples if s["final_sinc"] is not None]
    assert len(sincs) / N_SEEDS == pytest.approx(config.final_sinc_prob, abs=0.03)
    _covers([k["omega_c"] for k in sincs], *config.final_sinc_omega)
    assert {k["size"] for k in sincs} == set(config.final_sinc_sizes)


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("name", ["realworld_x4", "realworld_x2"])
def test_apply_is_deterministic_and_regenerates_from_the_record(
    photo: np.ndarray, name: str, version: int
) -> None:
    recipe = get_recipe(name, version=version)
    assert recipe.version == version
    for variant in range(4):
        params = recipe.sample_params(SeedKey("photo", variant))
        assert params == recipe.sample_params(SeedKey("photo", variant))
        lr = recipe.apply(photo, params)
        assert lr.shape == (192 // recipe.scale, 192 // recipe.scale, 3) and lr.dtype == np.uint8
        assert recipe.apply(photo, json.loads(json.dumps(params))).tobytes() == lr.tobytes()


# sha256 over the LRs of variants 0..3 of "photo", made by version 1 before version 2 existed (Pillow's
# libjpeg from the lock): the version-1 code path must keep making exactly these bytes
V1_DIGESTS = {
    "realworld_x4": "993eb1aee0800fd71af5174ff5131ecc908a8f3af6008d6ef96c782676ffa26e",
    "realworld_x2": "35d6f3f65fb3887b05db7b3267ae7d9fe493d26829e645f5734d15905e3efd52",
}


@pytest.mark.parametrize("name", sorted(V1_DIGESTS))
def test_version_1_pairs_still_regenerate_bit_for_bit(photo: np.ndarray, name: str) -> None:
    recipe, digest = get_recipe(name, version=1), hashlib.sha256()
    for variant in range(4):
        digest.update(recipe.apply(photo, recipe.sample_params(SeedKey("photo", variant))).tobytes())
    assert digest.hexdigest() == V1_DIGESTS[name]
    assert get_recipe(name).version == 2  # new pairs: the latest version
    with pytest.raises(ValueError, match=r"has versions \(1, 2\), not 3"):
        get_recipe(name, version=3)


def test_version_2_makes_what_version_1_makes_up_to_the_noise_draw(photo: np.ndarray) -> None:
    """Same params, both versions: a mild chain (noise sigma 1, a large anisotropic blur, a bicubic
    shrink, integer-factor area steps) agrees closely; a harsh one keeps its strength (the noise differs
    by its draw only). A non-integer area shrink differs more: PyTorch pools whole pixels, OpenCV their
    fractions (about 36 dB on this photo's edges)."""
    v1, v2 = get_recipe("realworld_x4", version=1), get_recipe("realworld_x4", version=2)
    mild = _mildest()
    mild["stage1"]["blur"] = {"kind": "aniso", "size": 21, "sigma_x": 2.5, "sigma_y": 0.8, "theta": 0.7}
    mild["stage1"]["resize"] = {"direction": "down", "factor": 0.5, "mode": "bicubic"}
    assert psnr_y(v2.apply(photo, mild), v1.apply(photo, mild)) > 40.0
    harsh = _mildest()
    harsh["stage1"]["noise"] = {"kind": "poisson", "scale": 3.0, "gray": False, "seed": 5}
    harsh["stage2"]["jpeg_quality"] = 30
    reference = ops.to_uint8(ops.resize(ops.to_float(photo), 48, 48, "area"))
    assert psnr_y(v2.apply(photo, harsh), reference) == pytest.approx(
        psnr_y(v1.apply(photo, harsh), reference), abs=1.0
    )


def _mildest() -> dict:
    def stage(blur: dict | None) -> dict:
        return {
            "blur": blur,
            "resize": {"direction": "keep", "factor": 1.0, "mode": "area"},
            "noise": {"kind": "gaussian", "sigma": 1.0, "gray": True, "seed": 0},
            "jpeg_quality": 95,
        }

    return {
        "stage1": stage({"kind": "iso", "size": 7, "sigma_x": 0.2, "sigma_y": 0.2, "theta": 0.0}),
        "stage2": stage(None),
        "final_order": "sinc_then_jpeg",
        "final_resize_mode": "area",
        "final_sinc": None,
    }


def test_mildest_chain_is_close_to_a_plain_area_downscale(photo: np.ndarray) -> None:
    recipe = get_recipe("realworld_x4")
    lr = recipe.apply(photo, _mildest())
    reference = ops.to_uint8(ops.resize(ops.to_float(photo), 48, 48, "area"))
    assert psnr_y(lr, reference) > 35.0
    harsh = _mildest()
    harsh["stage1"]["noise"]["sigma"] = 30.0
    harsh["stage2"]["jpeg_quality"] = 30
    assert psnr_y(recipe.apply(photo, harsh), reference) < psnr_y(lr, reference) - 3.0


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("stage1", "noise", "sigma"), 31.0, "stage1.noise.sigma=31.0 is outside"),
        (("stage2", "noise", "sigma"), 26.0, "stage2.noise.sigma=26.0 is outside"),
        (("stage1", "resize", "factor"), 0.5, "stage1.resize.factor \\(keep\\)=0.5"),
        (("stage1", "resize", "mode"), "nearest", "invalid params"),
        (("stage2", "jpeg_quality"), 96, "stage2.jpeg_quality=96"),
        (("stage1", "blur"), None, "stage1.blur presence contradicts"),
        (("stage1", "blur", "sigma_x"), 3.2, "stage1.blur.sigma_x=3.2"),
        (("final_sinc",), {"kind": "sinc", "size": 7, "omega_c": 0.5}, "final_sinc.omega_c=0.5"),
        (("stage1", "noise", "extra"), 1, "invalid params"),
    ],
)
def test_out_of_range_params_raise_before_any_work(path: tuple, value: object, message: str) -> None:
    params = _mildest()
    target = params
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(ValueError, match=message):
        get_recipe("realworld_x4").apply(np.zeros((1, 1), np.float32), params)  # image never looked at


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="resize_probs"):
        StageConfig(resize_probs=(0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match="resize_range"):
        StageConfig(resize_range=(1.2, 1.5))
    with pytest.raises(ValueError, match="jpeg_range"):
        StageConfig(jpeg_range=(30, 101))
    with pytest.raises(ValueError, match="final_sinc_prob"):
        RealworldConfig(final_sinc_prob=1.5)
    with pytest.raises(ValueError, match="scales 2 and 4"):
        type(get_recipe("realworld_x4"))(3)


def test_severity_combines_the_stages() -> None:
    recipe = get_recipe("realworld_x4")
    mild = recipe.severity(_mildest())
    assert mild.scale == 4 and mild.jpeg_quality == 95
    assert mild.noise_sigma == pytest.approx(math.sqrt(2.0))
    assert 0 < mild.blur_sigma < 0.3
    params = _mildest()
    params["final_sinc"] = {"kind": "sinc", "size": 21, "omega_c": math.pi / 3}
    assert recipe.severity(params).blur_sigma > mild.blur_sigma + 3.0  # an LR-pixel sinc is 4 HR pixels wide
