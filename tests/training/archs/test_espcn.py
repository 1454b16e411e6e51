"""ESPCN: paper layout, shapes at x2/x3/x4, parameter count, gradients, optional bicubic skip."""

from __future__ import annotations

import pytest
import torch

from tests.training.archs._arch_checks import (
    assert_gradients_reach_every_parameter,
    assert_upscales,
    count_parameters,
)
from training.archs.bicubic import bicubic_resize
from training.archs.espcn import ESPCN

torch.set_num_threads(1)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_shapes_and_gradients(scale):
    torch.manual_seed(0)
    model = ESPCN(scale)
    assert_upscales(model, scale)
    assert_gradients_reach_every_parameter(model, scale)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_parameter_count_follows_the_paper_layout(scale):
    # conv5x5 3->64, conv3x3 64->32, conv3x3 32->3*s^2, with biases
    expected = (3 * 64 * 25 + 64) + (64 * 32 * 9 + 32) + (32 * 3 * scale**2 * 9 + 3 * scale**2)
    assert count_parameters(ESPCN(scale)) == expected
    assert count_parameters(ESPCN(4)) == 37_200


def test_tanh_activations_and_no_skip_by_default():
    model = ESPCN(3)
    assert not model.residual
    assert sum(isinstance(m, torch.nn.Tanh) for m in model.modules()) == 2


def test_residual_flag_adds_a_float_bicubic_skip():
    model = ESPCN(2, residual=True)
    last = model.body[-1]
    torch.nn.init.zeros_(last.weight)
    torch.nn.init.zeros_(last.bias)
    x = torch.rand(1, 3, 8, 9)
    torch.testing.assert_close(model(x), bicubic_resize(x, (16, 18)))


@pytest.mark.parametrize("scale", [2, 4])
def test_traced_residual_espcn_matches_eager_at_other_sizes(scale):
    """The bicubic skip is size-generic: a trace at 32 x 32 serves odd sizes too."""
    torch.manual_seed(0)
    model = ESPCN(scale, residual=True).eval()
    with torch.no_grad():
        traced = torch.jit.trace(model, torch.rand(1, 3, 32, 32), check_trace=False)
        for height, width in ((37, 53), (211, 97)):
            x = torch.rand(1, 3, height, width)
            out = traced(x)
            assert out.shape == (1, 3, height * scale, width * scale)
            assert (out - model(x)).abs().max() <= 1e-6


def test_rejects_unsupported_scale():
    with pytest.raises(ValueError, match="espcn supports scales"):
        ESPCN(8)
