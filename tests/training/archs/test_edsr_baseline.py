"""EDSR-baseline: 16 res blocks / 64 features, shapes, parameter counts, mean shift, gradients."""

from __future__ import annotations

import pytest
import torch

from tests.training.archs._arch_checks import (
    assert_gradients_reach_every_parameter,
    assert_upscales,
    count_parameters,
)
from training.archs.edsr_baseline import DIV2K_RGB_MEAN, EDSRBaseline, ResBlock

torch.set_num_threads(1)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_shapes(scale):
    assert_upscales(EDSRBaseline(scale), scale)


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    assert_gradients_reach_every_parameter(EDSRBaseline(3), 3)


@pytest.mark.parametrize(("scale", "expected"), [(2, 1_369_859), (3, 1_554_499), (4, 1_517_571)])
def test_parameter_counts(scale, expected):
    # The paper's "1.5M" baseline; the often quoted 1.37M is the x2 model.
    assert count_parameters(EDSRBaseline(scale)) == expected


def test_layout_and_mean_shift_buffer():
    model = EDSRBaseline(4)
    assert sum(isinstance(m, ResBlock) for m in model.modules()) == 16
    assert all(block.res_scale == 1.0 for block in model.modules() if isinstance(block, ResBlock))
    assert "rgb_mean" in model.state_dict()
    assert "rgb_mean" not in dict(model.named_parameters())
    torch.testing.assert_close(model.rgb_mean.flatten(), torch.tensor(DIV2K_RGB_MEAN))


def test_zero_tail_returns_the_mean_image():
    # With the last conv zeroed, the output is exactly the added-back mean: the shift is wired both ways.
    model = EDSRBaseline(2)
    torch.nn.init.zeros_(model.tail[-1].weight)
    torch.nn.init.zeros_(model.tail[-1].bias)
    out = model(torch.rand(1, 3, 6, 6))
    torch.testing.assert_close(out, model.rgb_mean.expand_as(out))


def test_rejects_unsupported_scale():
    with pytest.raises(ValueError, match="edsr_baseline supports scales"):
        EDSRBaseline(5)
