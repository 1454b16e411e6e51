"""Pillow-exact bicubic: bit-identical to Pillow on real benchmark images, float variant close to it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from training.archs.bicubic import BicubicUpsampler, bicubic_resize, pillow_bicubic_taps

torch.set_num_threads(1)


def _to_tensor(arr: np.ndarray) -> torch.Tensor:
    if arr.ndim == 2:
        arr = arr[..., None]
    return torch.from_numpy(arr.copy()).permute(2, 0, 1)[None].float() / 255.0


def _to_uint8(t: torch.Tensor) -> np.ndarray:
    return (t[0].permute(1, 2, 0) * 255.0).round().to(torch.uint8).numpy()


@pytest.mark.parametrize(("set_name", "image"), [("Set5", "butterfly.png"), ("Set14", "bridge.png")])
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_upscale_is_bit_identical_to_pillow(shared_data, set_name, image, scale):
    hr = Image.open(shared_data / "sr_benchmarks" / set_name / image)
    width, height = hr.width // scale, hr.height // scale
    lr = hr.crop((0, 0, width * scale, height * scale)).resize((width, height), Image.BICUBIC)
    expected = np.asarray(lr.resize((width * scale, height * scale), Image.BICUBIC))
    got = _to_uint8(BicubicUpsampler(scale)(_to_tensor(np.asarray(lr))))
    if expected.ndim == 2:  # mode L: the module saw one channel
        got = got[..., 0]
    np.testing.assert_array_equal(got, expected)


def test_antialiased_downscale_is_bit_identical_to_pillow(shared_data):
    hr = Image.open(shared_data / "sr_benchmarks" / "Set5" / "bird.png")
    expected = np.asarray(hr.resize((hr.width // 3, hr.height // 3), Image.BICUBIC))
    got = _to_uint8(bicubic_resize(_to_tensor(np.asarray(hr)), expected.shape[:2], quantize=True))
    np.testing.assert_array_equal(got, expected)


def test_taps_are_normalised_and_in_range():
    index, weights = pillow_bicubic_taps(7, 28)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-12)
    assert index.min() >= 0 and index.max() <= 6


def test_float_variant_is_differentiable_and_close_to_quantized():
    # Mid-range inputs: bicubic overshoot stays inside [0, 1], so only Pillow's rounding differs.
    x = (0.25 + 0.5 * torch.rand(2, 3, 9, 11)).requires_grad_()
    out = bicubic_resize(x, (27, 33))
    out.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    quantized = bicubic_resize(x.detach(), (27, 33), quantize=True)
    # 8-bit rounding of the input, the intermediate and the output.
    assert (out.detach() - quantized).abs().max() <= 2.0 / 255


def test_module_shapes_and_no_parameters():
    for scale in (2, 3, 4):
        out = BicubicUpsampler(scale)(torch.rand(2, 3, 5, 6))
        assert out.shape == (2, 3, 5 * scale, 6 * scale)
    assert list(BicubicUpsampler(4).parameters()) == []


def test_rejects_unsupported_scale_and_bad_shape():
    with pytest.raises(ValueError, match="scales"):
        BicubicUpsampler(5)
    with pytest.raises(ValueError, match="N x C x H x W"):
        bicubic_resize(torch.rand(3, 4, 4), (8, 8))
