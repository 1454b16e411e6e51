"""PatchGAN critic: one logit per patch and the hidden activations, spectral norm bounding every layer
(its power-iteration vectors in the state dict, so a resumed run continues with them), gradients to every
parameter, a clear error for patches too small for its strides, and an input gradient the anti-aliasing
blur keeps free of the stride pattern."""

from __future__ import annotations

import pytest
import torch

from training.archs.discriminator import PatchDiscriminator

torch.set_num_threads(1)


def test_it_scores_each_patch_and_returns_every_hidden_activation():
    torch.manual_seed(0)
    critic = PatchDiscriminator(features=8, downs=3)
    logits, features = critic(torch.rand(2, 3, 64, 48))
    assert logits.shape == (2, 1, 8, 6)  # three stride-2 layers: 1/8 of each side
    assert [tuple(f.shape[1:]) for f in features] == [(8, 32, 24), (16, 16, 12), (32, 8, 6), (64, 8, 6)]


def test_spectral_norm_bounds_each_layer_and_its_vectors_are_checkpointed():
    torch.manual_seed(0)
    critic = PatchDiscriminator(features=8, downs=2)
    for _ in range(30):  # power iteration converges over forward passes in training mode
        critic(torch.rand(1, 3, 32, 32))
    for layer in [*critic.hidden, critic.head]:
        matrix = layer.weight.detach().flatten(1)
        assert torch.linalg.matrix_norm(matrix, ord=2) == pytest.approx(1.0, abs=0.05)
    state = critic.state_dict()
    assert any(k.endswith("parametrizations.weight.0._u") for k in state)
    clone = PatchDiscriminator(features=8, downs=2)
    clone.load_state_dict(state)
    x = torch.rand(1, 3, 32, 32)
    critic.eval()
    clone.eval()
    assert torch.equal(critic(x)[0], clone(x)[0])


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    critic = PatchDiscriminator(features=4, downs=2)
    logits, _ = critic(torch.rand(2, 3, 16, 16))
    logits.mean().backward()
    for name, p in critic.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_a_patch_smaller_than_the_strides_allow_is_refused():
    with pytest.raises(ValueError, match="at least 32 px"):
        PatchDiscriminator(features=4, downs=3)(torch.rand(1, 3, 24, 40))
    with pytest.raises(ValueError, match="downs >= 1"):
        PatchDiscriminator(downs=0)


def _phase_spread(grad: torch.Tensor, period: int) -> float:
    """How much the mean |input gradient| differs between the period x period pixel phases (interior only)."""
    g = grad.abs().sum(dim=(0, 1))[period:-period, period:-period]
    h, w = (g.shape[0] // period) * period, (g.shape[1] // period) * period
    phases = g[:h, :w].reshape(h // period, period, w // period, period).mean(dim=(0, 2))
    return float(phases.std() / phases.mean())


def test_antialiasing_takes_the_stride_pattern_out_of_the_critics_input_gradient():
    # A bare stride-2 critic sends a gradient that repeats on its stride grid back to the generator, which
    # then learns a dot grid; blurring before each stride-2 layer evens the gradient out across phases.
    spreads = {}
    for antialias in (False, True):
        torch.manual_seed(0)
        critic = PatchDiscriminator(features=8, downs=3, antialias=antialias)
        x = torch.full((1, 3, 96, 96), 0.5, requires_grad=True)
        critic(x)[0].sum().backward()
        spreads[antialias] = _phase_spread(x.grad, period=8)
    assert spreads[True] < 0.1 * spreads[False], spreads  # measured: 0.014 against 0.44


def test_the_antialiasing_blur_keeps_size_and_flat_regions():
    from training.archs.discriminator import blur

    x = torch.full((2, 5, 17, 20), 0.25)
    out = blur(x)
    assert out.shape == x.shape
    assert torch.allclose(out, x)
