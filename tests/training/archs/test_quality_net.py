"""QualityNet: under 1M parameters, any canvas size >= 32 px, scores in (0, 5), gradients everywhere, an
ONNX export with dynamic H/W that ONNX Runtime runs to torch's numbers, a 384-px latency bound, and a
registry that names what it knows."""

from __future__ import annotations

import logging
import time

import numpy as np
import pytest
import torch

from tests.training.archs._arch_checks import count_parameters
from training.archs.quality_net import QUALITY_ARCHS, QualityNet, build_quality_arch

log = logging.getLogger(__name__)


def trained_looking_net(seed: int = 0) -> QualityNet:
    """A QualityNet whose BatchNorm running statistics are not the defaults (so export parity means
    something), in eval mode."""
    torch.manual_seed(seed)
    net = QualityNet()
    with torch.no_grad():
        for _ in range(3):
            net(torch.rand(4, 3, 64, 64) * 0.8 + 0.1)
    return net.eval()


def test_defaults_stay_under_one_million_parameters():
    assert count_parameters(QualityNet()) <= 1_000_000


@pytest.mark.parametrize(("height", "width"), [(32, 32), (37, 53), (96, 64), (64, 384)])
def test_any_size_gives_one_score_in_range_per_image(height, width):
    net = trained_looking_net()
    with torch.no_grad():
        scores = net(torch.rand(3, 3, height, width))
    assert scores.shape == (3,) and scores.dtype == torch.float32
    assert torch.isfinite(scores).all() and (scores > 0).all() and (scores < 5).all()


def test_gradients_reach_every_parameter():
    torch.manual_seed(1)
    net = QualityNet()
    scores = net(torch.rand(4, 3, 64, 48))
    torch.nn.functional.l1_loss(scores, torch.tensor([5.0, 3.0, 1.0, 0.5])).backward()
    for name, param in net.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, f"{name} has an all-zero gradient"


def test_a_flat_image_has_a_finite_gradient():
    # the std pooling of a constant map is sqrt(0 + eps): no NaN from sqrt's derivative at 0
    net = QualityNet()
    image = torch.full((2, 3, 32, 32), 0.5, requires_grad=True)
    net(image).sum().backward()
    assert torch.isfinite(image.grad).all()


def test_onnx_export_with_dynamic_size_matches_torch(tmp_path):
    import onnxruntime as ort

    net = trained_looking_net()
    path = tmp_path / "quality.onnx"
    torch.onnx.export(
        net,
        (torch.rand(1, 3, 64, 48),),
        str(path),
        input_names=["image"],
        output_names=["score"],
        dynamic_axes={"image": {0: "n", 2: "h", 3: "w"}, "score": {0: "n"}},
        dynamo=False,  # the dynamo exporter needs onnxscript, which is not installed
    )
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    for shape in [(2, 3, 96, 72), (1, 3, 45, 131)]:
        image = torch.rand(*shape)
        (onnx_scores,) = session.run(["score"], {"image": image.numpy()})
        with torch.no_grad():
            torch_scores = net(image).numpy()
        assert onnx_scores.shape == (shape[0],)
        np.testing.assert_allclose(onnx_scores, torch_scores, atol=1e-4, rtol=0)


def test_a_384_canvas_scores_fast_on_one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        net, canvas = trained_looking_net(), torch.rand(1, 3, 384, 384)
        times = []
        with torch.inference_mode():
            for _ in range(10):  # oneDNN builds its kernels on the first calls
                net(canvas)
            for _ in range(20):
                started = time.perf_counter()
                net(canvas)
                times.append(time.perf_counter() - started)
    finally:
        torch.set_num_threads(threads)
    median_ms = 1000 * sorted(times)[len(times) // 2]
    log.info("quality_net 384x384 forward, 1 thread: %.1f ms (median of 20)", median_ms)
    assert median_ms < 50, f"{median_ms:.1f} ms"  # about 6 ms on the dev box; a loose bound for shared CI


def test_registry_builds_with_options_and_names_what_it_knows():
    net = build_quality_arch("quality_net", width=16, depth=3)
    assert isinstance(net, QUALITY_ARCHS["quality_net"]) and len(net.stages) == 2
    with pytest.raises(
        ValueError, match=r"unknown quality arch 'musiq'; known quality archs: \['quality_net'\]"
    ):
        build_quality_arch("musiq")
    with pytest.raises(ValueError, match=r"no option\(s\) \['scale'\]; its options are \[.*'width'\]"):
        build_quality_arch("quality_net", scale=4)
    with pytest.raises(ValueError, match="depth must be >= 1"):
        build_quality_arch("quality_net", depth=0)
