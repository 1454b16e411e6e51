"""The arch registry: every name builds at every scale; unknown names, scales and options fail clearly."""

from __future__ import annotations

import pytest
import torch

from training.archs import ARCHS, build_arch, check_arch, input_frames

torch.set_num_threads(1)


@pytest.mark.parametrize(
    ("name", "scale"), [(n, s) for n in sorted(ARCHS) for s in ARCHS[n].supported_scales]
)
def test_every_arch_builds_at_every_scale_it_supports(name, scale):
    model = build_arch(name, scale)
    assert isinstance(model, ARCHS[name])
    channels = 3 * input_frames(model)  # a multi-frame arch takes its window stacked along the channels
    assert model(torch.rand(1, channels, 8, 8)).shape == (1, 3, 8 * scale, 8 * scale)


def test_overrides_reach_the_constructor():
    assert build_arch("espcn", 4, residual=True).residual
    assert build_arch("safmn", 2, dim=48).to_feat.out_channels == 48


def test_unknown_arch_names_the_known_ones():
    with pytest.raises(ValueError, match="known archs: .*bicubic.*edsr_baseline.*espcn.*safmn"):
        build_arch("swinir", 4)


def test_unsupported_scale_names_the_supported_ones():
    with pytest.raises(ValueError, match=r"supports scales \[2, 3, 4\], got 8"):
        build_arch("edsr_baseline", 8)


def test_unknown_option_names_the_accepted_ones():
    with pytest.raises(ValueError, match="no option.*'depth'.*options are"):
        check_arch("espcn", 4, {"depth": 3})
