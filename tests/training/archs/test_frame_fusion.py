"""FrameFusion: shapes, sizes, a start at bicubic, gradients everywhere, and that it uses the neighbours."""

from __future__ import annotations

import pytest
import torch

from tests.training.archs._arch_checks import count_parameters
from training.archs import build_arch, input_frames
from training.archs.bicubic import bicubic_upscale


def test_a_window_in_the_centre_frame_out():
    model = build_arch("frame_fusion", 4, frames=5, features=16, blocks=2)
    out = model(torch.rand(2, 15, 10, 13))
    assert out.shape == (2, 3, 40, 52) and torch.isfinite(out).all() and input_frames(model) == 5
    with pytest.raises(ValueError, match="15 channels"):
        model(torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError, match="odd"):
        build_arch("frame_fusion", 4, frames=4)


def test_the_defaults_fit_the_cpu_budget_and_the_single_frame_twin_matches_it():
    multi = count_parameters(build_arch("frame_fusion", 4))
    twin = count_parameters(build_arch("frame_fusion", 4, frames=1, blocks=8))
    assert multi <= 1_000_000 and abs(twin - multi) / multi < 0.05


def test_it_starts_near_bicubic_of_the_centre_frame_and_every_weight_learns():
    torch.manual_seed(0)
    model = build_arch("frame_fusion", 4, frames=3, features=8, blocks=1)
    window = torch.rand(2, 9, 12, 12)
    start = bicubic_upscale(window[:, 3:6], 4)
    assert (model(window) - start).abs().mean() < 0.05
    torch.nn.functional.l1_loss(model(window), torch.rand(2, 3, 48, 48)).backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_neighbours_change_the_output_and_the_twin_ignores_nothing_it_has():
    torch.manual_seed(1)
    model = build_arch("frame_fusion", 4, frames=3, features=8, blocks=1).eval()
    window = torch.rand(1, 9, 12, 12)
    other = window.clone()
    other[:, :3] = torch.rand(1, 3, 12, 12)  # a different previous frame
    with torch.no_grad():
        assert (model(window) - model(other)).abs().max() > 1e-4
    assert input_frames(build_arch("espcn", 4)) == 1


def test_the_flow_option_fuses_an_aligned_window_at_the_input_within_the_twins_budget():
    torch.manual_seed(2)
    model = build_arch("frame_fusion", 4, frames=3, features=8, blocks=1, align="flow")
    assert model.prealigned and model.align is None
    assert not build_arch("frame_fusion", 4, frames=3).prealigned
    assert not build_arch("frame_fusion", 4, frames=1, align="flow").prealigned  # nothing to align
    window = torch.rand(2, 9, 12, 12)
    assert (model(window) - bicubic_upscale(window[:, 3:6], 4)).abs().mean() < 0.05
    torch.nn.functional.l1_loss(model(window), torch.rand(2, 3, 48, 48)).backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
    flow = count_parameters(build_arch("frame_fusion", 4, frames=5, blocks=8, align="flow"))
    twin = count_parameters(build_arch("frame_fusion", 4, frames=1, blocks=8))
    assert abs(flow - twin) / twin < 0.05
    with pytest.raises(ValueError, match="align"):
        build_arch("frame_fusion", 4, align="optical")


def test_neighbour_residuals_start_as_the_single_frame_twin_and_still_read_the_neighbours():
    torch.manual_seed(3)
    model = build_arch(
        "frame_fusion", 4, frames=3, features=8, blocks=1, align="flow", neighbour_residuals=True
    )
    twin = build_arch("frame_fusion", 4, frames=1, features=8, blocks=1).eval()
    state = model.state_dict()
    state["extract.0.weight"] = state["extract.0.weight"][:, 3:6]  # the centre's input weights
    twin.load_state_dict(state)
    model.eval()
    centre = torch.rand(1, 3, 12, 12)
    still = centre.repeat(1, 3, 1, 1)  # neighbours equal to the centre: zero residuals
    moved = still.clone()
    moved[:, :3] = torch.rand(1, 3, 12, 12)
    with torch.no_grad():
        assert torch.allclose(model(still), twin(centre), atol=1e-6)
        assert (model(moved) - model(still)).abs().max() > 1e-4
    # the centre's weights start at the twin's init scale: sqrt(frames) times the other inputs'
    weights = model.extract[0].weight.detach()
    ratio = weights[:, 3:6].std() / torch.cat([weights[:, :3], weights[:, 6:]], dim=1).std()
    assert 1.4 < ratio < 2.1  # sqrt(3) = 1.73
    with pytest.raises(ValueError, match="neighbour_residuals"):
        build_arch("frame_fusion", 4, frames=3, neighbour_residuals=True)  # learned alignment: raw frames
