"""pipeline/quality/scorer.py: onnxruntime scores equal the torch net's on the same quality canvas.

Real product photos (portrait 1066x1500, square 1000x1000, and a landscape crop) are decoded by ingest's
normalizer, put on the canvas the model's metadata names, and scored one per run.
"""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.clean.normalize import decode_rgb
from pipeline.distort.canvas import quality_canvas
from pipeline.quality.scorer import QualityScorer
from tests.support.quality_models import TEST_CANVAS_LONG_SIDE, export_onnx, make_net, torch_score

PHOTOS = ("mh01-black_main.jpg", "luma-foam-roller.jpg", "lt01.jpg")


@pytest.fixture(scope="module")
def photos(product_photos):
    decoded = [np.asarray(decode_rgb(product_photos / name)) for name in PHOTOS]
    decoded.append(np.ascontiguousarray(decoded[0][200:500]))  # a wide crop: another aspect ratio
    return decoded


def test_scores_equal_the_torch_net_on_the_same_canvas(quality_net, quality_onnx, photos):
    scorer = QualityScorer(quality_onnx)
    assert (scorer.canvas_long_side, scorer.canvas_version) == (TEST_CANVAS_LONG_SIDE, 1)  # none recorded
    shapes, scores = set(), []
    for rgb in photos:
        canvas = quality_canvas(rgb, TEST_CANVAS_LONG_SIDE, version=1)
        shapes.add(canvas.shape)
        expected = torch_score(quality_net, canvas)
        assert scorer.score_canvas(canvas) == pytest.approx(expected, abs=1e-4)
        assert scorer.score_rgb(rgb) == pytest.approx(expected, abs=1e-4)
        scores.append(scorer.score_rgb(rgb))
    assert len(shapes) == len(photos)  # every aspect ratio ran at its own shape
    assert all(0 < s < 5 for s in scores) and len(set(scores)) == len(scores)


def test_photos_go_on_the_canvas_version_the_model_records(quality_net, tmp_path, photos):
    scorer = QualityScorer(export_onnx(quality_net, tmp_path / "v2.onnx", canvas_version=2))
    assert scorer.canvas_version == 2
    for rgb in photos[:2]:
        expected = torch_score(quality_net, quality_canvas(rgb, TEST_CANVAS_LONG_SIDE, version=2))
        assert scorer.score_rgb(rgb) == pytest.approx(expected, abs=1e-4)
        # the photos are over twice the canvas: the two versions' canvases differ, and so would the scores
        assert not np.array_equal(
            quality_canvas(rgb, TEST_CANVAS_LONG_SIDE, version=2),
            quality_canvas(rgb, TEST_CANVAS_LONG_SIDE, version=1),
        )


def test_an_n_by_1_output_is_accepted(tmp_path, photos):
    net = make_net(seed=3, keep_dim=True)
    scorer = QualityScorer(export_onnx(net, tmp_path / "n1.onnx"))
    canvas = quality_canvas(photos[1], TEST_CANVAS_LONG_SIDE)
    assert scorer.score_canvas(canvas) == pytest.approx(torch_score(net, canvas), abs=1e-4)


def test_scores_are_clipped_to_0_5(tmp_path, photos):
    canvas = quality_canvas(photos[1], TEST_CANVAS_LONG_SIDE)
    raw = {}
    for sign in (1.0, -1.0):  # an unsquashed head stretched far beyond [0, 5] either way
        net = make_net(seed=1, squash=False, scale=sign * 1e4)
        raw[sign] = torch_score(net, canvas)
        scorer = QualityScorer(export_onnx(net, tmp_path / f"raw{sign}.onnx"))
        assert scorer.score_canvas(canvas) == (5.0 if raw[sign] > 5 else 0.0)
    assert raw[1.0] > 5 and raw[-1.0] < 0 or raw[1.0] < 0 and raw[-1.0] > 5


def test_the_session_uses_the_threads_it_is_given(quality_onnx):
    options = QualityScorer(quality_onnx, threads=2).session.get_session_options()
    assert options.intra_op_num_threads == 2 and options.inter_op_num_threads == 1


def test_wrong_inputs_are_value_errors(quality_onnx, photos):
    scorer = QualityScorer(quality_onnx)
    with pytest.raises(ValueError, match="expects a quality canvas with long side 96"):
        scorer.score_canvas(photos[1])  # a photo, not its canvas
    with pytest.raises(ValueError, match="uint8"):
        scorer.score_rgb(photos[1].astype(np.float32))
    with pytest.raises(ValueError, match="HxWx3"):
        scorer.score_rgb(photos[1][..., 0])
