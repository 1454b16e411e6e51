"""Tests for pipeline.degrade.kernels: kernel shapes, sampling, validation, filtering, sigma equivalents."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from pipeline.degrade.kernels import (
    BlurConfig,
    KernelParams,
    build_kernel,
    check_kernel,
    filter2d,
    sample_kernel,
    sigma_equivalent,
)


def _kernel(**fields: object) -> KernelParams:
    return KernelParams.model_validate(fields)


@pytest.mark.parametrize(
    "fields",
    [
        {"kind": "iso", "size": 21, "sigma_x": 2.0, "sigma_y": 2.0, "theta": 0.0},
        {"kind": "aniso", "size": 15, "sigma_x": 3.0, "sigma_y": 0.5, "theta": 0.7},
        {"kind": "generalized_aniso", "size": 13, "sigma_x": 1.0, "sigma_y": 2.0, "theta": -1.0, "beta": 0.6},
        {"kind": "plateau_iso", "size": 9, "sigma_x": 1.5, "sigma_y": 1.5, "theta": 0.0, "beta": 1.5},
        {"kind": "sinc", "size": 21, "omega_c": 1.0},
    ],
)
def test_kernels_are_normalized_centred_and_point_symmetric(fields: dict) -> None:
    taps = build_kernel(_kernel(**fields))
    assert taps.shape == (fields["size"], fields["size"])
    assert taps.sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(taps, taps[::-1, ::-1], atol=1e-15)
    centre = fields["size"] // 2
    assert taps[centre, centre] == taps.max()


def test_anisotropic_kernel_follows_its_angle() -> None:
    along_x = build_kernel(_kernel(kind="aniso", size=21, sigma_x=3.0, sigma_y=0.5, theta=0.0))
    along_y = build_kernel(_kernel(kind="aniso", size=21, sigma_x=3.0, sigma_y=0.5, theta=math.pi / 2))
    assert along_x[10, 16] > 10 * along_x[16, 10]  # spread along columns (x)
    np.testing.assert_allclose(along_y, along_x.T, atol=1e-12)


def test_sigma_equivalent() -> None:
    iso = _kernel(kind="iso", size=21, sigma_x=1.5, sigma_y=1.5, theta=0.0)
    assert sigma_equivalent(iso) == pytest.approx(1.5, rel=1e-3)
    aniso = _kernel(kind="aniso", size=21, sigma_x=2.0, sigma_y=1.0, theta=0.4)
    assert sigma_equivalent(aniso) == pytest.approx(math.sqrt((4.0 + 1.0) / 2), rel=1e-3)
    wide, narrow = (_kernel(kind="sinc", size=21, omega_c=w) for w in (math.pi / 5, math.pi))
    assert sigma_equivalent(wide) > sigma_equivalent(narrow) > 0
    truncated = _kernel(kind="iso", size=7, sigma_x=3.0, sigma_y=3.0, theta=0.0)
    assert sigma_equivalent(truncated) < 3.0  # a 7x7 window cannot blur like sigma 3


def test_filter2d_matches_direct_correlation_with_reflect_padding() -> None:
    rng = np.random.default_rng(0)
    img = rng.random((40, 33, 3), dtype=np.float32)
    taps = build_kernel(_kernel(kind="aniso", size=9, sigma_x=2.0, sigma_y=0.8, theta=0.3))
    out = filter2d(img, taps)
    assert out.dtype == np.float32 and out.shape == img.shape
    for channel in range(3):
        direct = ndimage.correlate(img[:, :, channel].astype(np.float64), taps, mode="mirror")
        np.testing.assert_allclose(out[:, :, channel], direct, atol=2e-6)


def test_filter2d_works_on_images_smaller_than_the_kernel() -> None:
    img = np.full((3, 2, 3), 0.5, np.float32)
    out = filter2d(img, build_kernel(_kernel(kind="iso", size=21, sigma_x=3.0, sigma_y=3.0, theta=0.0)))
    np.testing.assert_allclose(out, 0.5, atol=1e-6)


def test_params_model_requires_the_fields_of_its_kind() -> None:
    with pytest.raises(ValueError, match="needs exactly the fields"):
        _kernel(kind="sinc", size=7, omega_c=1.0, sigma_x=1.0)
    with pytest.raises(ValueError, match="needs exactly the fields"):
        _kernel(kind="plateau_iso", size=7, sigma_x=1.0, sigma_y=1.0, theta=0.0)
    with pytest.raises(ValueError, match="odd"):
        _kernel(kind="sinc", size=8, omega_c=1.0)
    with pytest.raises(ValueError, match="kind"):
        _kernel(kind="box", size=7)


def test_check_kernel_rejects_values_outside_the_config() -> None:
    config = BlurConfig()
    check_kernel(_kernel(kind="iso", size=7, sigma_x=0.2, sigma_y=0.2, theta=0.0), config, "blur", "r")
    bad = [
        ({"kind": "iso", "size": 23, "sigma_x": 1.0, "sigma_y": 1.0, "theta": 0.0}, "size=23"),
        ({"kind": "iso", "size": 7, "sigma_x": 3.5, "sigma_y": 3.5, "theta": 0.0}, "sigma_x=3.5"),
        ({"kind": "iso", "size": 7, "sigma_x": 1.0, "sigma_y": 2.0, "theta": 0.0}, "isotropic"),
        ({"kind": "generalized_iso", "size": 7, "sigma_x": 1, "sigma_y": 1, "theta": 0, "beta": 5}, "beta=5"),
        ({"kind": "sinc", "size": 7, "omega_c": 0.7}, "omega_c=0.7"),  # small sinc: cutoff >= pi/3
    ]
    for fields, message in bad:
        with pytest.raises(ValueError, match=message):
            check_kernel(_kernel(**fields), config, "blur", "r")
    with pytest.raises(ValueError, match="kind=aniso is not one of"):
        only_iso = BlurConfig(kernel_kinds=("iso",), kernel_probs=(1.0,))
        check_kernel(_kernel(kind="aniso", size=7, sigma_x=1, sigma_y=1, theta=0.1), only_iso, "blur", "r")


def test_sampled_kernels_cover_every_kind_and_validate() -> None:
    config = BlurConfig()
    rng = np.random.default_rng(7)
    kinds = {}
    for _ in range(1500):
        params = sample_kernel(rng, config)
        kernel = KernelParams.model_validate(params)
        check_kernel(kernel, config, "blur", "r")
        kinds[kernel.kind] = kinds.get(kernel.kind, 0) + 1
    assert set(kinds) == {*config.kernel_kinds, "sinc"}
    assert kinds["iso"] / 1500 == pytest.approx(0.9 * 0.45, abs=0.05)
    assert kinds["sinc"] / 1500 == pytest.approx(0.1, abs=0.03)


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="sum to 1"):
        BlurConfig(kernel_probs=(0.5, 0.5, 0.5, 0.0, 0.0, 0.0))
    with pytest.raises(ValueError, match="odd sizes"):
        BlurConfig(kernel_sizes=(8,))
    with pytest.raises(ValueError, match="sigma_range"):
        BlurConfig(sigma_range=(0.0, 3.0))
    with pytest.raises(ValueError, match="extra"):
        BlurConfig(kernel_size=21)
