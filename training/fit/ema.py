"""Exponential moving average of a model's weights, for validation and export.

In: the live `nn.Module` after each optimizer step. Out: `ema.module`, a frozen copy whose parameters
are the running average  ema = d * ema + (1 - d) * live,  and whose buffers (e.g. EDSR's mean shift)
are copied from the live model. `state_dict()` / `load_state_dict()` round-trip it through a
checkpoint.

`ModelEMA` is deliberately not an `nn.Module`: a module attribute holding it is not registered as a
submodule, so DDP never sees the averaged copy and the Lightning state dict holds only live weights;
the owner saves the average explicitly.

With `warmup=True` (default) the decay used at update t is min(decay, (1 + t) / (10 + t)), as in
TensorFlow's ExponentialMovingAverage with num_updates: early updates follow the live weights
closely, so short runs (a 30-minute CPU budget) are not validated on a blend with the random init.
With warmup=False the decay is constant (BasicSR's net_g_ema).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


class ModelEMA:
    def __init__(self, model: nn.Module, decay: float = 0.999, warmup: bool = True) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.warmup = warmup
        self.updates = 0
        # The average is kept in float32 whatever precision the live model trains in.
        self.module = copy.deepcopy(model).float().eval()
        for param in self.module.parameters():
            param.requires_grad_(False)

    def current_decay(self) -> float:
        """The decay the next `update` will apply."""
        if not self.warmup:
            return self.decay
        return min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Fold the live weights of `model` (same architecture) into the average."""
        decay = self.current_decay()
        live_params = dict(model.named_parameters())
        for name, average in self.module.named_parameters():
            live = live_params[name].detach()
            average.lerp_(live.to(device=average.device, dtype=average.dtype), 1.0 - decay)
        live_buffers = dict(model.named_buffers())
        for name, buffer in self.module.named_buffers():
            buffer.copy_(live_buffers[name].detach())
        self.updates += 1

    def to(self, device: torch.device | str) -> ModelEMA:
        self.module.to(device)
        return self

    def state_dict(self) -> dict[str, Any]:
        return {
            "decay": self.decay,
            "warmup": self.warmup,
            "updates": self.updates,
            "weights": {name: t.detach().cpu().clone() for name, t in self.module.state_dict().items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.decay = float(state["decay"])
        self.warmup = bool(state["warmup"])
        self.updates = int(state["updates"])
        self.module.load_state_dict(state["weights"])
