"""The GAN's measurements against its L1 twin, on real product photos: a model compared with itself, a
blurring "GAN" that must lose on every measure, a candidate without a twin, and the edge / text mask."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from pipeline.degrade.bicubic import bicubic_downscale
from tests.support.checkpoints import trained_checkpoint
from training.gates.gan_validate import edge_mask, masked_psnr, measure_against_twin
from training.gates.safe_load import safe_load
from training.gates.verdict import CheckpointMeta, GanGateConfig

torch.set_num_threads(1)
SIDE = 256  # NIQE needs 2 x 96 px


@pytest.fixture(scope="module")
def twin(tmp_path_factory, shared_data):
    path = trained_checkpoint(tmp_path_factory.mktemp("twin") / "twin.ckpt", shared_data / "sr_train" / "T91")
    model, meta = safe_load(str(path))
    return path, model, meta


@pytest.fixture(scope="module")
def pairs(product_photos):
    out = []
    for path in sorted(product_photos.glob("*.jpg"))[:3]:
        hr = np.asarray(Image.open(path).convert("RGB").resize((SIDE, SIDE), Image.Resampling.LANCZOS))
        out.append((bicubic_downscale(hr, 4), hr))
    return {"pairs/realworld_x4:test": out}


class Blurred(nn.Module):
    """The twin's output through a 5x5 box blur: softer everywhere, worst on edges."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.register_buffer("kernel", torch.full((3, 1, 5, 5), 1 / 25))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.inner(x)
        return nn.functional.conv2d(
            nn.functional.pad(y, (2, 2, 2, 2), mode="replicate"), self.kernel, groups=3
        )


def _meta(path) -> CheckpointMeta:
    return CheckpointMeta(task="sr_gan", arch="espcn", scale=4, init_from=str(path))


def test_a_model_compared_with_itself_loses_and_gains_nothing(twin, pairs):
    path, model, _ = twin
    gates, metrics = measure_against_twin(model, _meta(path), pairs, GanGateConfig(), "cpu")
    assert metrics["gan/images"] == 3 and metrics["gan/niqe_images"] >= 1
    assert metrics["gan/psnr_drop_db"] == 0.0 and metrics["gan/edge_psnr_drop_db"] == 0.0
    assert metrics["gan/niqe_gain"] == 0.0
    assert (
        metrics["gan/psnr_y"] > 20 and metrics["gan/edge_psnr_y"] < metrics["gan/psnr_y"]
    )  # edges are harder
    passed = {g.gate: g.passed for g in gates}
    assert passed == {
        "gan_twin": True,
        "gan_psnr_drop": True,
        "gan_niqe_gain": False,
        "gan_edge_fidelity": True,
    }


def test_a_blurring_candidate_loses_psnr_on_edges_and_looks_less_natural(twin, pairs):
    path, model, _ = twin
    _, metrics = measure_against_twin(Blurred(model), _meta(path), pairs, GanGateConfig(), "cpu")
    assert metrics["gan/psnr_drop_db"] > 0.5 and metrics["gan/edge_psnr_drop_db"] > 0.5
    assert metrics["gan/edge_psnr_y"] < metrics["gan/psnr_y"] - 3  # the error sits on the edges
    assert metrics["gan/niqe_gain"] < 0  # NIQE rises: blur is what the fine-tuning is meant to undo


def test_without_a_twin_every_gan_gate_fails_with_the_reason(twin, pairs, tmp_path):
    _, model, _ = twin
    scratch = CheckpointMeta(task="sr_gan", arch="espcn", scale=4)
    gates, metrics = measure_against_twin(model, scratch, pairs, GanGateConfig(), "cpu")
    assert metrics == {} and not any(g.passed for g in gates)
    assert "init_from" in gates[0].detail and gates[0].gate == "gan_twin"
    missing = GanGateConfig(twin=str(tmp_path / "gone.ckpt"))
    gates, _ = measure_against_twin(model, scratch, pairs, missing, "cpu")
    assert gates[0].gate == "gan_twin" and "cannot be loaded" in gates[0].detail


def test_the_edge_mask_holds_both_sides_of_a_stroke_and_nothing_flat():
    plane = np.full((32, 32), 235.0, np.float32)
    plane[:, 16:18] = 16.0  # a dark 2 px stroke on white, as printed text is
    mask = edge_mask(plane, 100.0)
    assert mask[:, 14:20].all() and not mask[:, :12].any() and not mask[:, 23:].any()
    noisy = plane + 3.0
    assert masked_psnr(noisy, plane, mask) == pytest.approx(20 * np.log10(255 / 3), abs=1e-6)


def test_the_quality_model_scores_both_outputs_and_the_preference_counts_ties_half(twin, pairs, tmp_path):
    from pipeline.quality.scorer import QualityScorer
    from tests.support.quality_models import export_onnx, make_net
    from training.gates.evaluate import super_resolve

    path, model, _ = twin
    onnx = export_onnx(make_net(seed=3), tmp_path / "quality.onnx")
    config = GanGateConfig(quality_model=str(onnx))
    _, itself = measure_against_twin(model, _meta(path), pairs, config, "cpu")
    assert itself["gan/quality_preference"] == 0.5 and itself["gan/quality"] == itself["gan/twin_quality"]
    blurred = Blurred(model)
    _, metrics = measure_against_twin(blurred, _meta(path), pairs, config, "cpu")
    scorer = QualityScorer(onnx)
    (items,) = pairs.values()
    mine = [scorer.score_rgb(super_resolve(blurred, lr, "cpu")) for lr, _ in items]
    theirs = [scorer.score_rgb(super_resolve(model, lr, "cpu")) for lr, _ in items]
    assert metrics["gan/quality"] == pytest.approx(np.mean(mine), abs=1e-6)
    assert metrics["gan/twin_quality"] == pytest.approx(np.mean(theirs), abs=1e-6)
    wins = np.mean([1.0 if a > b else 0.5 if a == b else 0.0 for a, b in zip(mine, theirs, strict=True)])
    assert metrics["gan/quality_preference"] == wins
