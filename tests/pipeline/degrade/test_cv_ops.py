"""pipeline.degrade.cv_ops: version-2 blur, resize and noise agree with version 1 within their stated bounds."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.degrade import SeedKey, cv_ops, get_recipe, kernels, ops


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    rng = np.random.default_rng(7)
    smooth = ops.resize(rng.random((24, 20, 3), dtype=np.float32), 97, 83, "bicubic")  # odd sizes
    return np.clip(smooth + 0.05 * rng.standard_normal((97, 83, 3), dtype=np.float32), 0, 1)


def _sampled_kernels(count: int = 60) -> list[kernels.KernelParams]:
    recipe = get_recipe("realworld_x4")
    out = []
    for i in range(count):
        params = recipe.validate_params(recipe.sample_params(SeedKey(f"k{i}")))
        out += [k for k in (params.stage1.blur, params.stage2.blur, params.final_sinc) if k is not None]
    return out


def test_blur_matches_the_exact_correlation_within_the_tolerance(image: np.ndarray) -> None:
    kinds, separable = set(), 0
    for kernel in _sampled_kernels():
        taps = kernels.build_kernel(kernel)
        exact, fast = kernels.filter2d(image, taps), cv_ops.filter2d(image, taps)
        assert fast.shape == exact.shape and fast.dtype == np.float32
        assert np.abs(fast - exact).max() <= cv_ops.KERNEL_L1_TOLERANCE + 1e-5, kernel
        kinds.add(kernel.kind)
        separable += cv_ops.separable_terms(taps) is not None
    assert {"iso", "aniso", "sinc"} <= kinds and separable > 0  # both code paths ran


def test_trimming_drops_only_tails_within_the_budget_and_keeps_the_kernel_centred() -> None:
    taps = kernels.build_kernel(
        kernels.KernelParams(kind="iso", size=21, sigma_x=0.8, sigma_y=0.8, theta=0.0)
    )
    trimmed, spent = cv_ops.trim_kernel(taps, 5e-4)
    assert trimmed.shape[0] % 2 == 1 and trimmed.shape[1] % 2 == 1 and trimmed.shape[0] <= 7
    margin_y, margin_x = (21 - trimmed.shape[0]) // 2, (21 - trimmed.shape[1]) // 2
    np.testing.assert_array_equal(trimmed, taps[margin_y : 21 - margin_y, margin_x : 21 - margin_x])
    assert spent == pytest.approx(np.abs(taps).sum() - np.abs(trimmed).sum()) and spent <= 5e-4
    wide = kernels.build_kernel(
        kernels.KernelParams(kind="iso", size=21, sigma_x=3.0, sigma_y=3.0, theta=0.0)
    )
    assert cv_ops.trim_kernel(wide, 5e-4)[0].shape[0] > trimmed.shape[0]  # more spread, more taps kept


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
@pytest.mark.parametrize("size", [(41, 37), (160, 131), (97, 83)])
def test_resize_agrees_with_pytorch_semantics(image: np.ndarray, mode: str, size: tuple[int, int]) -> None:
    assert np.abs(cv_ops.resize(image, *size, mode) - ops.resize(image, *size, mode)).max() < 1e-5


def test_area_is_exact_at_integer_factors_and_nearest_when_growing(image: np.ndarray) -> None:
    crop = image[:96, :80]
    assert np.abs(cv_ops.resize(crop, 24, 20, "area") - ops.resize(crop, 24, 20, "area")).max() < 1e-6
    assert np.array_equal(cv_ops.resize(crop, 192, 160, "area"), ops.resize(crop, 192, 160, "area"))
    with pytest.raises(ValueError, match="resize mode must be one of"):
        cv_ops.resize(crop, 10, 10, "lanczos")


def _noise(kind: str, gray: bool, seed: int, **strength: float):
    model = ops.GaussianNoise if kind == "gaussian" else ops.PoissonNoise
    return model(kind=kind, gray=gray, seed=seed, **strength)


@pytest.mark.parametrize("gray", [False, True])
def test_noise_is_seeded_and_has_the_recorded_strength(gray: bool) -> None:
    flat = np.full((256, 256, 3), 0.5, dtype=np.float32)
    gaussian = _noise("gaussian", gray, 11, sigma=10.0)
    first = cv_ops.add_noise(flat, gaussian)
    assert np.array_equal(first, cv_ops.add_noise(flat, gaussian))
    assert not np.array_equal(first, cv_ops.add_noise(flat, _noise("gaussian", gray, 12, sigma=10.0)))
    assert np.std(first - flat) * 255 == pytest.approx(10.0, rel=0.03)
    if gray:  # one plane for all channels
        assert np.array_equal(first[..., 0], first[..., 2])
    # Poisson on a ramp of all 256 levels (v = 256), away from the clip: the normal approximation has
    # numpy's Poisson spread (version 1) and no bias
    ramp = np.broadcast_to(np.linspace(0.2, 0.8, 256, dtype=np.float32)[None, :, None], (256, 256, 3)).copy()
    ramp[0, :, :] = np.linspace(0, 1, 256, dtype=np.float32)[:, None]  # one row holds every level
    noise = _noise("poisson", gray, 11, scale=2.0)
    fast, exact = cv_ops.add_noise(ramp, noise) - ramp, ops.add_noise(ramp, noise) - ramp
    assert np.std(fast[1:]) == pytest.approx(np.std(exact[1:]), rel=0.03)
    assert abs(float(np.mean(fast[1:]))) < 1e-3
