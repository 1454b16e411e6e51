"""ModelEMA: the averaging rule, warmup decay, buffer copying, checkpoint round trip, no registration."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from training.fit.ema import ModelEMA

torch.set_num_threads(1)


class _Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 2)
        self.register_buffer("offset", torch.zeros(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x) + self.offset


def _shift(model: nn.Module, amount: float) -> None:
    with torch.no_grad():
        for p in model.parameters():
            p.add_(amount)


def test_constant_decay_follows_the_rule():
    model = _Tiny()
    ema = ModelEMA(model, decay=0.9, warmup=False)
    start = model.linear.weight.detach().clone()
    _shift(model, 1.0)
    ema.update(model)
    torch.testing.assert_close(ema.module.linear.weight, start + 0.1)
    ema.update(model)
    torch.testing.assert_close(ema.module.linear.weight, start + 0.1 + 0.9 * 0.0 + 0.1 * 0.9)


def test_warmup_decay_grows_towards_the_target():
    ema = ModelEMA(_Tiny(), decay=0.999)
    seen = []
    for _ in range(3):
        seen.append(ema.current_decay())
        ema.update(_Tiny())
    assert seen == pytest.approx([1 / 10, 2 / 11, 3 / 12])
    ema.updates = 10_000
    assert ema.current_decay() == 0.999


def test_buffers_are_copied_not_averaged_and_average_is_frozen():
    model = _Tiny()
    ema = ModelEMA(model, decay=0.99, warmup=False)
    model.offset.fill_(5.0)
    ema.update(model)
    torch.testing.assert_close(ema.module.offset, torch.full((2,), 5.0))
    assert not any(p.requires_grad for p in ema.module.parameters())
    assert not ema.module.training


def test_state_dict_round_trip():
    model = _Tiny()
    ema = ModelEMA(model, decay=0.95)
    _shift(model, 0.5)
    ema.update(model)
    ema.update(model)
    restored = ModelEMA(_Tiny(), decay=0.5, warmup=False)
    restored.load_state_dict(ema.state_dict())
    assert (restored.decay, restored.warmup, restored.updates) == (0.95, True, 2)
    for a, b in zip(restored.module.state_dict().values(), ema.module.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)


def test_not_registered_as_a_submodule():
    holder = nn.Module()
    holder.net = _Tiny()
    holder.ema = ModelEMA(holder.net)
    assert all(not key.startswith("ema") for key in holder.state_dict())
    assert len(list(holder.parameters())) == 2


def test_rejects_bad_decay():
    with pytest.raises(ValueError, match="decay"):
        ModelEMA(_Tiny(), decay=1.0)
