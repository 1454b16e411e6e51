"""align_window on a real synthetic clip: neighbours land on the centre, the centre is untouched, tiny or
malformed windows are handled."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pipeline.video.align import MIN_SIDE, align_window
from pipeline.video.clips import clip_params, product_box, render_clip
from pipeline.video.config import ClipsConfig


@pytest.fixture(scope="module")
def window(product_photos):
    photo = np.asarray(Image.open(product_photos / "wj03-red_back.jpg").convert("RGB"))
    config = ClipsConfig(frames=5, side=128)
    return render_clip(photo, clip_params("wj03", 0, photo.shape, config, product_box(photo)), config).lr


def _error(frame: np.ndarray, centre: np.ndarray) -> float:
    inner = (slice(4, -4), slice(4, -4))  # borders are replicated, not seen
    return float(np.abs(frame[inner].astype(float) - centre[inner]).mean())


def test_neighbours_are_warped_onto_the_centre_and_the_centre_is_kept(window):
    aligned = align_window(window)
    centre = window[2]
    assert len(aligned) == 5 and all(f.shape == centre.shape and f.dtype == np.uint8 for f in aligned)
    assert np.array_equal(aligned[2], centre)
    for raw, warped in zip(window[[0, 1, 3, 4]], [aligned[i] for i in (0, 1, 3, 4)], strict=True):
        assert _error(raw, centre) > 3 * _error(warped, centre), (_error(raw, centre), _error(warped, centre))


def test_a_single_frame_or_a_tiny_window_comes_back_as_it_is(window):
    assert np.array_equal(align_window(window[2:3])[0], window[2])
    tiny = window[:3, : MIN_SIDE - 1, : MIN_SIDE - 1]
    assert all(np.array_equal(a, b) for a, b in zip(align_window(tiny), tiny, strict=True))


def test_malformed_windows_are_refused(window):
    with pytest.raises(ValueError, match="odd"):
        align_window(window[:4])
    with pytest.raises(ValueError, match="differ in size"):
        align_window([window[0], window[1], window[2][:-2]])
