"""Shared assertions for the learned-arch tests: output shapes, parameter count, gradient flow."""

from __future__ import annotations

import torch
from torch import nn


def assert_upscales(model: nn.Module, scale: int, height: int = 10, width: int = 13) -> None:
    out = model(torch.rand(2, 3, height, width))
    assert out.shape == (2, 3, height * scale, width * scale)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


def assert_gradients_reach_every_parameter(model: nn.Module, scale: int) -> None:
    lr, hr = torch.rand(2, 3, 12, 12), torch.rand(2, 3, 12 * scale, 12 * scale)
    torch.nn.functional.l1_loss(model(lr), hr).backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(param.grad).all(), f"{name} has a non-finite gradient"
        assert param.grad.abs().sum() > 0, f"{name} has an all-zero gradient"


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
