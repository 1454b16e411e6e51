import torch
from torch import nn

from training.archs import build_arch
from training.export import export_torchscript, save_torchscript


def test_espcn_export_matches_eager_and_saves():
    torch.manual_seed(0)
    model = build_arch("espcn", 4).eval()
    result = export_torchscript(model, torch.rand(1, 3, 24, 24))
    assert result.passed and result.max_abs_diff <= 1e-5 and result.shape_generic
    loaded = torch.jit.load(__import__("io").BytesIO(save_torchscript(result.module)))
    x = torch.rand(1, 3, 24, 24)
    assert torch.allclose(loaded(x), model(x), atol=1e-6)


def test_residual_espcn_traces_without_patches():
    """Fails until training/archs/bicubic.py passes int(...) sizes to pillow_bicubic_taps.

    Under torch.jit.trace, x.shape[dim] is a 0-d tensor, which numpy cannot multiply with."""
    model = build_arch("espcn", 4, residual=True).eval()
    result = export_torchscript(model, torch.rand(1, 3, 32, 32))
    assert result.error is None, f"residual ESPCN cannot be traced: {result.error}"
    assert result.passed


class _CallCounter(nn.Module):
    """Its output depends on Python state the trace freezes: the export must not match eager."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return x * self.calls


class _Untraceable(nn.Module):
    def forward(self, x):
        return x.numpy()


def test_mismatching_or_untraceable_export_fails_the_check():
    diverging = export_torchscript(_CallCounter(), torch.rand(1, 3, 8, 8))
    assert not diverging.passed and diverging.max_abs_diff > 1e-5 and diverging.error is None
    broken = export_torchscript(_Untraceable(), torch.rand(1, 3, 8, 8))
    assert not broken.passed and broken.module is None and broken.error
