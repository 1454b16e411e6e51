"""Pillow-exact bicubic: bit-identical to Pillow on real benchmark images, float variant close to it,
and the size-generic integer upscale equal to Pillow's own taps at odd sizes, traced or not."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from training.archs.bicubic import (
    BicubicUpsampler,
    bicubic_resize,
    bicubic_upscale,
    phase_filters,
    pillow_bicubic_taps,
)

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


def _taps_matrix(in_size: int, out_size: int) -> torch.Tensor:
    """out_size x in_size resampling matrix from Pillow's taps: the reference the generic path must meet."""
    index, weights = pillow_bicubic_taps(in_size, out_size)
    matrix = np.zeros((out_size, in_size))
    np.add.at(matrix, (np.repeat(np.arange(out_size), index.shape[1]), index.ravel()), weights.ravel())
    return torch.from_numpy(matrix)


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("size", [(7, 11), (37, 53), (211, 97), (1, 2)])
def test_generic_upscale_equals_pillows_taps_at_odd_sizes(scale, size):
    height, width = size
    x = torch.rand(2, 3, height, width, generator=torch.Generator().manual_seed(scale), dtype=torch.float64)
    # horizontal pass first, then vertical, as Pillow and the numpy-tap path do
    expected = _taps_matrix(height, height * scale) @ (x @ _taps_matrix(width, width * scale).T)
    got = bicubic_upscale(x, scale)
    assert got.shape == expected.shape
    assert (got - expected).abs().max() <= 1e-12
    got32 = bicubic_upscale(x.float(), scale)
    assert got32.dtype == torch.float32 and (got32.double() - expected).abs().max() <= 1e-6
    # bicubic_resize takes the same path for an integer upscale
    torch.testing.assert_close(bicubic_resize(x, (height * scale, width * scale)), got, rtol=0, atol=1e-12)


def test_phase_filters_are_pillows_interior_weights():
    for scale in (2, 3, 4):
        filters = phase_filters(scale)
        assert filters.shape == (scale, 5)
        np.testing.assert_allclose(filters.sum(axis=1), 1.0, atol=1e-12)
        np.testing.assert_allclose(filters, filters[::-1, ::-1], atol=1e-12)  # phases mirror each other
    index, weights = pillow_bicubic_taps(20, 40)
    row = 2 * 10 + 1  # output 21 = 2 * 10 + phase 1
    np.testing.assert_array_equal(weights[row][weights[row] != 0], phase_filters(2)[1][1:])
    assert list(index[row][weights[row] != 0]) == [9, 10, 11, 12]


def test_generic_upscale_is_differentiable():
    x = torch.rand(1, 2, 5, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: bicubic_upscale(t, 3), (x,))


def test_generic_upscale_keeps_float32_under_mixed_precision():
    """Autocast would run the convolutions in bf16 (errors of ~3 gray levels): the skip opts out."""
    x = torch.rand(1, 3, 37, 53)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got, resized = bicubic_upscale(x, 4), bicubic_resize(x, (148, 212))
    expected = bicubic_upscale(x, 4)
    assert got.dtype == resized.dtype == torch.float32
    assert (got - expected).abs().max() == 0 and (resized - expected).abs().max() <= 1e-6


class _Upscale(torch.nn.Module):
    def forward(self, x):
        return bicubic_upscale(x, 3)


def test_traced_generic_upscale_serves_every_size():
    traced = torch.jit.trace(_Upscale(), torch.rand(1, 3, 32, 32), check_trace=False)
    for height, width in ((37, 53), (211, 97), (3, 1)):
        x = torch.rand(2, 3, height, width)
        torch.testing.assert_close(traced(x), bicubic_upscale(x, 3), rtol=0, atol=0)
