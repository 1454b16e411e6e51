"""FFDNet-style restorer: same-size output at any (odd) size, its parameter budget, gradients, the
residual form, and a TorchScript trace that holds at sizes other than the traced one."""

from __future__ import annotations

import pytest
import torch

from tests.training.archs._arch_checks import (
    assert_gradients_reach_every_parameter,
    assert_upscales,
    count_parameters,
)
from training.archs import build_arch
from training.archs.ffdnet import FFDNet
from training.serve.export import export_torchscript

torch.set_num_threads(1)


@pytest.mark.parametrize(("height", "width"), [(10, 13), (9, 9), (1, 2), (16, 16)])
def test_output_keeps_the_input_size(height, width):
    torch.manual_seed(0)
    assert_upscales(FFDNet(features=8, depth=3), 1, height, width)


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    assert_gradients_reach_every_parameter(FFDNet(features=8, depth=3), 1)


def test_default_fits_the_one_million_parameter_budget():
    params = count_parameters(FFDNet())
    assert 800_000 < params < 1_000_000, params  # the paper's colour model: 12 layers of 96


def test_a_zero_correction_returns_the_input_exactly():
    model = FFDNet(features=8, depth=2)
    torch.nn.init.zeros_(model.up.weight)
    torch.nn.init.zeros_(model.up.bias)
    x = torch.rand(1, 3, 11, 7)
    torch.testing.assert_close(model(x), x)


def test_the_trace_serves_odd_sizes_it_was_not_traced_at():
    torch.manual_seed(0)
    model = FFDNet(features=8, depth=3).eval()
    result = export_torchscript(model, torch.rand(1, 3, 32, 32), atol=1e-5)
    assert result.passed and result.shape_generic, result.error
    assert {(1, 3, 37, 53), (1, 3, 211, 97)} <= set(result.checked_shapes)


def test_only_scale_one_and_a_real_depth():
    with pytest.raises(ValueError, match="supports scales"):
        build_arch("ffdnet", 2)
    with pytest.raises(ValueError, match="depth"):
        FFDNet(depth=1)


def test_it_starts_near_the_identity_with_a_signal_that_survives_its_depth():
    # PyTorch's default init shrank the activations layer by layer; the 30-minute bench model trained to
    # an input-blind net (bench/results/restore.json at cf752e0). He init keeps them at one scale.
    torch.manual_seed(0)
    model = FFDNet(features=64, depth=12)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        hidden = model.down(torch.nn.functional.pad(x, (0, 1, 0, 1), mode="replicate"))
        spreads = []
        for layer in model.body:
            hidden = layer(hidden)
            if isinstance(layer, torch.nn.ReLU):
                spreads.append(float(hidden.std()))
        assert min(spreads) > 0.5 * spreads[0], spreads
        assert float((model(x) - x).abs().max()) < 0.05
