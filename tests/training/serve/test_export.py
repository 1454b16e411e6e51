"""TorchScript export: the gate checks the trace against eager at the example's size and at odd sizes."""

import io
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from training.archs import build_arch
from training.serve.export import DEFAULT_CHECK_SIZES, export_torchscript, save_torchscript

torch.set_num_threads(1)


def test_espcn_export_matches_eager_and_saves():
    torch.manual_seed(0)
    model = build_arch("espcn", 4).eval()
    result = export_torchscript(model, torch.rand(1, 3, 24, 24))
    assert result.passed and result.max_abs_diff <= 1e-5 and result.shape_generic
    assert result.checked_shapes == ((1, 3, 24, 24), (1, 3, 37, 53), (1, 3, 211, 97))
    loaded = torch.jit.load(io.BytesIO(save_torchscript(result.module)))
    x = torch.rand(1, 3, 24, 24)
    assert torch.allclose(loaded(x), model(x), atol=1e-6)


@pytest.mark.parametrize(
    ("arch", "kwargs"),
    [("espcn", {}), ("espcn", {"residual": True}), ("edsr_baseline", {}), ("safmn", {})],
)
def test_learned_archs_pass_the_gate_at_odd_sizes(arch, kwargs):
    torch.manual_seed(0)
    result = export_torchscript(build_arch(arch, 4, **kwargs), torch.rand(1, 3, 32, 32))
    assert result.error is None, result.error
    assert result.passed and result.shape_generic and result.max_abs_diff <= 1e-5
    assert result.checked_shapes == ((1, 3, 32, 32), *((1, 3, h, w) for h, w in DEFAULT_CHECK_SIZES))
    assert len(result.diffs) == 3 and max(result.diffs) == result.max_abs_diff


class _SizeFrozen(nn.Module):
    """Reads the width into Python: the trace keeps the example's width as a constant."""

    def forward(self, x):
        return x + float(x.shape[-1]) / 100.0


def test_size_specialised_trace_fails_the_gate():
    result = export_torchscript(_SizeFrozen(), torch.rand(1, 3, 32, 32))
    assert result.diffs[0] == 0.0  # right at the traced size
    assert not result.passed and not result.shape_generic and result.error is None
    assert result.diffs[1:] == pytest.approx([0.21, 0.65], abs=1e-5)  # widths 53 and 97 instead of 32
    # the old behaviour, checking only the example's shape, is still available and passes
    only_example = export_torchscript(_SizeFrozen(), torch.rand(1, 3, 32, 32), check_sizes=())
    assert only_example.passed and not only_example.shape_generic
    assert only_example.checked_shapes == ((1, 3, 32, 32),)


def test_trace_that_raises_at_another_size_fails_the_gate_with_the_size_named():
    # the 8-bit bicubic baseline computes its taps in numpy from the traced size
    result = export_torchscript(build_arch("bicubic", 2), torch.rand(1, 3, 32, 32), check_sizes=((37, 53),))
    assert result.module is not None and result.diffs == (0.0, float("inf"))
    assert not result.passed and not result.shape_generic
    assert result.error.startswith("37x53: RuntimeError")


def test_exported_model_serves_any_size_through_the_pyfunc(tmp_path):
    """The registry's MLflow pyfunc (training/serve/serving_pyfunc.py) over an export that passed the gate."""
    from training.serve.serving_pyfunc import SRTorchScriptModel

    torch.manual_seed(0)
    model = build_arch("espcn", 2, residual=True).eval()
    result = export_torchscript(model, torch.rand(1, 3, 32, 32))
    (tmp_path / "model.pt").write_bytes(save_torchscript(result.module))
    (tmp_path / "meta.json").write_text(json.dumps({"scale": 2, "input_shape": list(result.input_shape)}))
    served = SRTorchScriptModel()
    served.load_context(
        SimpleNamespace(
            artifacts={"torchscript": str(tmp_path / "model.pt"), "meta": str(tmp_path / "meta.json")}
        )
    )
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in ((37, 53), (20, 7))]
    for image, out in zip(images, served.predict(None, images), strict=True):
        x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0
        with torch.no_grad():
            eager = model(x)[0].clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        assert out.shape == (2 * image.shape[0], 2 * image.shape[1], 3)
        assert np.abs(out.astype(int) - eager.astype(int)).max() <= 1
    assert served.predict(None, images[1].astype(np.int64)).shape == (40, 14, 3)  # JSON integer lists
    for bad in (images[0][..., :2], images[0].astype(np.float32) / 255, images[0][0]):
        with pytest.raises(ValueError, match="uint8 H x W x 3"):
            served.predict(None, bad)


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
