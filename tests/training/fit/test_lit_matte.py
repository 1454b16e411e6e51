"""MatteModule's loss: zero-ish for a perfect matte, each part moves as defined, and training steps lower it
on a fixed batch."""

from __future__ import annotations

import torch

from training.fit.lit_matte import MatteModelConfig, MatteModule, soft_iou
from training.fit.lit_module import OptimConfig


def _batch(n=2, size=32):
    torch.manual_seed(0)
    alpha = torch.zeros(n, 1, size, size)
    alpha[:, :, 8:24, 8:24] = 1
    fg, bg = torch.rand(n, 3, size, size), torch.rand(n, 3, size, size)
    return {"image": alpha * fg + (1 - alpha) * bg, "alpha": alpha, "fg": fg, "bg": bg, "key": ["a", "b"][:n]}


def test_soft_iou_of_perfect_and_disjoint_mattes():
    a = _batch()["alpha"]
    assert soft_iou(a, a).item() == 1.0 and soft_iou(1 - a, a).item() == 0.0


def test_the_compositional_part_is_zero_at_the_true_alpha_and_loss_falls_when_training():
    module = MatteModule(
        MatteModelConfig(arch_options={"width": 8, "depth": 3, "max_width": 16}), OptimConfig()
    )
    batch = _batch()
    exact_logits = torch.where(batch["alpha"] > 0.5, 20.0, -20.0)
    _, parts = module.compute_loss(exact_logits, batch)
    assert parts["composition"] < 1e-6 and parts["l1"] < 1e-6 and parts["iou"] < 1e-6
    optimizer = torch.optim.Adam(module.net.parameters(), lr=5e-3)
    first = None
    for _ in range(30):
        loss, _ = module.compute_loss(module.net.logits(batch["image"]), batch)
        first = first if first is not None else loss.item()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.7 * first
