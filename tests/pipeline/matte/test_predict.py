"""Full-resolution mattes from the exported model: the guided upsampling keeps a sharp edge where the photo
has one, the predictor follows the matte contract, and a model without an `alpha` output is refused."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from pipeline.matte.predict import MattePredictor, guided_upsample
from pipeline.quality.model_file import QualityModelError
from training.archs.matte_net import MatteNet
from training.serve.export_onnx import export_onnx


def test_guided_upsampling_follows_the_photos_edge():
    full = np.zeros((400, 400), np.float32)
    full[:, 203:] = 1.0  # a sharp vertical edge in the photo's luma
    small = cv2.resize(full, (100, 100), interpolation=cv2.INTER_AREA)
    alpha = small.copy()  # the model's matte at the canvas size: soft over one canvas pixel
    guided = guided_upsample(alpha, small, full)
    bilinear = np.clip(cv2.resize(alpha, (400, 400), interpolation=cv2.INTER_LINEAR), 0, 1)
    truth = full
    assert np.abs(guided - truth).mean() < 0.5 * np.abs(bilinear - truth).mean()


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory):
    torch.manual_seed(0)
    net = MatteNet(width=8, depth=3, max_width=16).eval()
    exported = export_onnx(net, 96, 1e-4, output="alpha")
    assert exported.passed, exported.error
    path = tmp_path_factory.mktemp("matte") / "model.onnx"
    path.write_bytes(exported.data)
    return path, net


def test_the_predictor_mattes_at_the_canvas_and_returns_the_photos_size(onnx_file):
    path, net = onnx_file
    predictor = MattePredictor(path)
    assert predictor.canvas_long_side == 96
    photo = np.random.default_rng(0).integers(0, 256, (300, 200, 3), dtype=np.uint8)
    alpha = predictor.alpha(photo)
    assert alpha.shape == (300, 200) and alpha.dtype == np.float32 and 0 <= alpha.min() <= alpha.max() <= 1
    canvas = predictor.canvas(photo)
    assert canvas.shape == (96, 64, 3)
    with torch.no_grad():
        eager = net(torch.from_numpy(canvas.copy()).permute(2, 0, 1)[None].float() / 255)[0, 0].numpy()
    assert np.abs(predictor.canvas_alpha(canvas) - eager).max() < 1e-4
    with pytest.raises(ValueError, match="uint8 H x W x 3"):
        predictor.alpha(photo[..., 0])


def test_a_scoring_model_is_not_a_matte_model(tmp_path):
    from training.archs.quality_net import QualityNet

    exported = export_onnx(QualityNet().eval(), 96, 1e-3)
    path = tmp_path / "quality.onnx"
    path.write_bytes(exported.data)
    with pytest.raises(QualityModelError, match="alpha model contract"):
        MattePredictor(path)
