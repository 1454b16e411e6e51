"""Damage levels: the normalization both ends of a conditioned restorer share, and fixed levels bound for
serving (refused for a model that would ignore them)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from training.archs.ffdnet import FFDNet
from training.archs.levels import UNKNOWN, WithLevels, check_levels, normalize

torch.set_num_threads(1)


def test_zero_is_no_damage_and_one_the_recipes_worst():
    np.testing.assert_allclose(normalize("noise_sigma", [0, 25, 75, 200]), [0, 1 / 3, 1, 1], rtol=1e-6)
    np.testing.assert_allclose(normalize("jpeg_quality", [100, 55, 10, 5]), [0, 0.5, 1, 1], rtol=1e-6)
    assert normalize("noise_sigma", np.zeros(3)).dtype == np.float32


def test_unknown_or_repeated_names_are_refused():
    assert check_levels(["noise_sigma", "jpeg_quality"]) == ("noise_sigma", "jpeg_quality")
    with pytest.raises(ValueError, match="unknown damage level"):
        check_levels(["blur"])
    with pytest.raises(ValueError, match="repeat"):
        check_levels(["noise_sigma", "noise_sigma"])


def test_bound_levels_are_what_the_net_is_told_and_the_others_stay_unknown():
    torch.manual_seed(0)
    net = FFDNet(features=8, depth=3, levels=("noise_sigma", "jpeg_quality")).eval()
    x = torch.rand(2, 3, 9, 12)
    bound = WithLevels(net, {"noise_sigma": 30.0})
    expected = net(x, torch.tensor([[0.4, UNKNOWN]]).expand(2, -1))
    torch.testing.assert_close(bound(x), expected)
    assert not torch.allclose(bound(x), WithLevels(net, {"noise_sigma": 5.0})(x))


def test_a_model_that_would_ignore_the_level_is_refused():
    with pytest.raises(ValueError, match="trained blind"):
        WithLevels(FFDNet(features=8, depth=3), {"noise_sigma": 25.0})
    with pytest.raises(ValueError, match=r"reads only \['noise_sigma'\].*jpeg_quality"):
        WithLevels(FFDNet(features=8, depth=3, levels=["noise_sigma"]), {"jpeg_quality": 30})
