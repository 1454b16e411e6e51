import numpy as np
import torch

from training.archs import build_arch
from training.gates.measure import golden_check, golden_input, latency_ms, reference_image, score_sets


def test_golden_input_is_fixed_and_in_range():
    a, b = golden_input(32), golden_input(32)
    assert torch.equal(a, b) and a.shape == (1, 3, 32, 32)
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0 and float(a.std()) > 0.1


def test_golden_check_flags_shape_range_and_nan():
    bicubic = build_arch("bicubic", 2)
    stats, problem = golden_check(bicubic, 16, 2, (-0.25, 1.25))
    assert problem is None and stats["shape"] == [1, 3, 32, 32] and stats["finite"]
    assert "shape" in golden_check(bicubic, 16, 3, (-0.25, 1.25))[1]
    assert "outside" in golden_check(lambda x: bicubic(x) * 4, 16, 2, (-0.25, 1.25))[1]
    assert "NaN" in golden_check(lambda x: bicubic(x) * float("nan"), 16, 2, (-0.25, 1.25))[1]


def test_bicubic_reproduces_the_published_set5_baseline(shared_data):
    bicubic = build_arch("bicubic", 4)
    results = score_sets(
        {"model": bicubic, "bicubic": bicubic}, {"Set5": shared_data / "sr_benchmarks" / "Set5"}, 4
    )
    assert results["Set5"]["images"] == 5
    assert (
        abs(results["Set5"]["model"][0] - 28.42) < 0.02
        and results["Set5"]["model"] == results["Set5"]["bicubic"]
    )


def test_reference_image_and_latency(tmp_path):
    synthetic = reference_image(None, 40)
    assert synthetic.shape == (40, 40, 3) and synthetic.dtype == np.uint8
    from PIL import Image

    Image.fromarray(synthetic[:20]).save(tmp_path / "ref.png")
    assert reference_image(tmp_path / "ref.png", 999).shape == (20, 40, 3)
    assert latency_ms(build_arch("espcn", 2), synthetic, 2, tile=32, overlap=4, repeats=2) > 0
