"""SAFMN: shapes at x2/x3/x4, the ~240K parameter budget, gradients, SAFM and LayerNorm behaviour."""

from __future__ import annotations

import pytest
import torch

from tests.training.archs._arch_checks import (
    assert_gradients_reach_every_parameter,
    assert_upscales,
    count_parameters,
)
from training.archs.safmn import SAFM, SAFMN, ChannelLayerNorm, SAFMBlock

torch.set_num_threads(1)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_shapes(scale):
    assert_upscales(SAFMN(scale), scale, height=17, width=23)


def test_tiny_inputs_still_run():
    assert SAFMN(2)(torch.rand(1, 3, 3, 5)).shape == (1, 3, 6, 10)


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    assert_gradients_reach_every_parameter(SAFMN(4), 4)


def test_parameter_count_matches_the_paper():
    count = count_parameters(SAFMN(4))
    assert count == 239_520  # paper: 240K at x4
    assert count <= 300_000
    assert sum(isinstance(m, SAFMBlock) for m in SAFMN(4).modules()) == 8


def test_channel_layernorm_normalises_each_pixel_over_channels():
    x = torch.randn(2, 36, 5, 7) * 3 + 1
    out = ChannelLayerNorm(36)(x)
    torch.testing.assert_close(out.mean(1), torch.zeros(2, 5, 7), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.var(1, unbiased=False), torch.ones(2, 5, 7), atol=1e-3, rtol=0)


def test_safm_modulates_its_input():
    # The output is GELU(aggregate) * x: zero input channels stay zero.
    safm = SAFM(36)
    x = torch.randn(1, 36, 16, 16)
    x[:, :5] = 0
    assert torch.all(safm(x)[:, :5] == 0)


def test_rejects_bad_settings():
    with pytest.raises(ValueError, match="safmn supports scales"):
        SAFMN(6)
    with pytest.raises(ValueError, match="divisible"):
        SAFM(30, levels=4)
