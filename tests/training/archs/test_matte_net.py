"""MatteNet: any input size in, a matte of the same size in [0, 1] out; under 2M parameters by default;
options checked by name."""

from __future__ import annotations

import pytest
import torch

from training.archs.matte_net import MatteNet, build_matte_arch


def test_any_size_in_a_matte_of_that_size_out():
    net = MatteNet(width=8, depth=4, max_width=32).eval()
    with torch.no_grad():
        for h, w in ((64, 64), (97, 131), (33, 40)):
            alpha = net(torch.rand(2, 3, h, w))
            assert alpha.shape == (2, 1, h, w) and alpha.min() >= 0 and alpha.max() <= 1
            assert torch.allclose(
                torch.sigmoid(net.logits(torch.zeros(1, 3, h, w))), net(torch.zeros(1, 3, h, w))
            )


def test_the_default_fits_the_cpu_budget_and_options_are_checked():
    assert sum(p.numel() for p in build_matte_arch("matte_net").parameters()) <= 2_000_000
    with pytest.raises(ValueError, match="no option"):
        build_matte_arch("matte_net", channels=3)
    with pytest.raises(ValueError, match="unknown matte arch"):
        build_matte_arch("u2net")
    with pytest.raises(ValueError, match="depth >= 2"):
        MatteNet(depth=1)


def test_the_shipped_configs_build_a_cpu_default_and_a_larger_gpu_model():
    from pathlib import Path

    from training.fit.train import load_train_config

    configs = Path(__file__).resolve().parents[3] / "training" / "configs"
    sizes = {}
    for name in ("matte_net", "matte_net_gpu"):
        config = load_train_config(configs / f"{name}.yaml", [])
        assert config.task == "matte"
        net = build_matte_arch(config.model.arch, **config.model.arch_options)
        sizes[name] = sum(p.numel() for p in net.parameters())
    assert sizes["matte_net"] <= 2_000_000 < sizes["matte_net_gpu"]
