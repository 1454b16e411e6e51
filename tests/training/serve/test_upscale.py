"""Tiled upscale: spans, seamless stitching, alpha, bounded memory (the `crisp upscale` command's own
tests are in tests/crisp/commands/test_upscale.py)."""

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from tests.support.checkpoints import TRAINED_ARCH_KWARGS, trained_espcn_state
from training.archs import build_arch
from training.serve.upscale import UpscaleConfig, axis_spans, count_tiles, upscale_bands, upscale_image


@pytest.fixture(scope="module")
def espcn(shared_data):
    model = build_arch("espcn", 4, **TRAINED_ARCH_KWARGS)
    model.load_state_dict(trained_espcn_state(shared_data / "sr_train" / "T91"))
    return model.eval()


@pytest.fixture(scope="module")
def photo(product_photos):
    path = sorted(product_photos.glob("*.jpg"))[0]
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))[400:610, 300:533]  # 210 x 233: not a multiple of any tile


@pytest.mark.parametrize(
    "size,tile,overlap", [(300, 64, 8), (233, 64, 16), (64, 64, 8), (10, 64, 8), (65, 64, 0)]
)
def test_spans_partition_the_axis_with_context(size, tile, overlap):
    spans = axis_spans(size, tile, overlap)
    assert spans[0].core_start == 0 and spans[-1].core_end == size
    assert all(a.core_end == b.core_start for a, b in zip(spans, spans[1:], strict=False))
    assert len({s.end - s.start for s in spans}) == 1  # equal windows: tiles batch together
    for s in spans:
        assert 0 <= s.start <= s.core_start < s.core_end <= s.end <= size
        assert s.start == 0 or s.core_start - s.start >= overlap
        assert s.end == size or s.end - s.core_end >= overlap


def test_tiled_equals_whole_image_for_espcn(espcn, photo):
    # ESPCN's receptive field radius is 4 LR px (5x5, 3x3, 3x3 convs; the bicubic skip reaches 2) < overlap.
    whole = upscale_image(espcn, photo, 4, tile=1024, overlap=0, device="cpu")
    tiled = upscale_image(espcn, photo, 4, tile=64, overlap=8, device="cpu", batch_size=4)
    assert whole.shape == tiled.shape == (840, 932, 3) and tiled.dtype == np.uint8
    diff = np.abs(whole.astype(np.int16) - tiled.astype(np.int16))
    assert diff.max() <= 1  # 1/255 after quantization: float rounding differs between conv sizes
    assert (diff > 0).mean() < 1e-3
    assert count_tiles(*photo.shape[:2], tile=64, overlap=8) == 25


def test_tiled_bicubic_is_exactly_pillow(photo):
    model = build_arch("bicubic", 3)
    tiled = upscale_image(model, photo, 3, tile=48, overlap=4, device="cpu", batch_size=3)
    pillow = np.asarray(Image.fromarray(photo).resize((233 * 3, 210 * 3), Image.Resampling.BICUBIC))
    assert np.array_equal(tiled, pillow)


def test_gray_small_and_alpha_inputs(espcn, photo):
    gray = Image.fromarray(photo).convert("L").crop((0, 0, 40, 30))  # smaller than one tile
    out = upscale_image(espcn, gray, 4, tile=64, overlap=8)
    assert out.shape == (120, 160, 3)
    rgba = Image.fromarray(photo[:50, :60]).convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize((60, 50)))
    out = upscale_image(espcn, rgba, 4, tile=32, overlap=4)
    expected_alpha = np.asarray(rgba.getchannel("A").resize((240, 200), Image.Resampling.BICUBIC))
    assert out.shape == (200, 240, 4) and np.array_equal(out[..., 3], expected_alpha)


class _NearestSpy(nn.Module):
    """A stand-in model (nearest x2) that records the largest input it was given."""

    def __init__(self):
        super().__init__()
        self.largest = (0, 0, 0, 0)

    def forward(self, x):
        self.largest = max(self.largest, tuple(x.shape))
        return x.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)


def test_memory_is_bounded_by_the_tile_and_output_can_be_preallocated(tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (1500, 2000, 3), dtype=np.uint8)
    spy = _NearestSpy()
    heights = [
        band.shape
        for _, band in upscale_bands(spy, image, 2, tile=256, overlap=16, device="cpu", batch_size=2)
    ]
    assert spy.largest == (2, 3, 256, 256)  # never more than one batch of tiles reaches the model
    assert max(h for h, _, _ in heights) == 2 * (256 - 32) and sum(h for h, _, _ in heights) == 3000
    assert {(w, c) for _, w, c in heights} == {(4000, 3)}  # a band spans the width, never the whole image
    out = np.lib.format.open_memmap(tmp_path / "out.npy", mode="w+", dtype=np.uint8, shape=(3000, 4000, 3))
    assert upscale_image(spy, image, 2, tile=256, overlap=16, device="cpu", out=out) is out
    assert np.array_equal(out[::2, ::2], image)
    with pytest.raises(ValueError, match="out must be"):
        upscale_image(spy, image, 2, out=np.empty((10, 10, 3), np.uint8))


def test_bad_arguments():
    with pytest.raises(ValueError, match="must exceed 2"):
        UpscaleConfig(tile=32, overlap=16)
    with pytest.raises(ValueError, match="uint8"):
        upscale_image(_NearestSpy(), np.zeros((8, 8, 3), np.float32), 2)
    with pytest.raises(ValueError, match="HxW"):
        upscale_image(_NearestSpy(), np.zeros((8, 8, 2), np.uint8), 2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU (run on the device machine)")
def test_gpu_batches_match_cpu(espcn, photo):
    cpu = upscale_image(espcn, photo, 4, tile=64, overlap=8, device="cpu")
    gpu = upscale_image(espcn, photo, 4, tile=64, overlap=8, device="cuda", batch_size=8)
    assert np.abs(cpu.astype(np.int16) - gpu.astype(np.int16)).max() <= 1
