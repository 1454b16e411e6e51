"""Matte measures: exact on hand-made masks, and each one moves the way its definition says."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.matte.measure import boundary_f, matte_measures, mean_measures


def _square(size: int, lo: int, hi: int) -> np.ndarray:
    mask = np.zeros((size, size), np.float32)
    mask[lo:hi, lo:hi] = 1
    return mask


def test_a_perfect_matte_scores_perfectly():
    true = _square(64, 16, 48)
    m = matte_measures(true, true)
    assert m == {"iou": 1.0, "mae": 0.0, "sad": 0.0, "grad": 0.0, "boundary_f": 1.0}


def test_iou_mae_and_sad_of_a_shifted_square():
    true, pred = _square(64, 16, 48), np.roll(_square(64, 16, 48), 4, axis=1)
    m = matte_measures(pred, true)
    assert m["iou"] == pytest.approx((32 * 28) / (32 * 36))
    assert m["mae"] == pytest.approx(2 * 32 * 4 / 64**2) and m["sad"] == pytest.approx(2 * 32 * 4 / 1000)
    assert m["boundary_f"] < 1 and m["grad"] > 0


def test_a_blurrier_edge_costs_more_gradient_error_while_iou_barely_moves():
    import cv2

    true = _square(64, 16, 48)
    found = [matte_measures(cv2.GaussianBlur(true, (0, 0), sigma), true) for sigma in (0.7, 1.5, 3.0)]
    assert all(m["iou"] > 0.95 for m in found)
    assert found[0]["grad"] < found[1]["grad"] < found[2]["grad"]


def test_empty_masks_and_size_mismatch():
    empty = np.zeros((8, 8), np.float32)
    assert matte_measures(empty, empty)["iou"] == 1.0 and boundary_f(empty > 0, empty > 0) == 1.0
    assert boundary_f(empty > 0, _square(8, 2, 6) > 0) == 0.0
    with pytest.raises(ValueError, match="differ in size"):
        matte_measures(empty, np.zeros((8, 9), np.float32))
    assert mean_measures([]) == {}
    two = mean_measures([matte_measures(empty, empty), matte_measures(_square(8, 2, 6), empty)])
    assert two["iou"] == 0.5
