"""Cut-outs: backgrounds parse or are refused clearly, the RGBA keeps the matte, a white render is exactly
white at the border, the product sits centred at the fill, and a shadow darkens only the background."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pipeline.matte.cutout import Background, cutout_rgba, parse_background, render
from schemas.errors import InputError


@pytest.fixture
def photo_and_alpha():
    photo = np.full((120, 100, 3), 250, np.uint8)
    photo[30:90, 30:70] = (200, 30, 30)
    alpha = np.zeros((120, 100), np.float32)
    alpha[30:90, 30:70] = 1.0
    alpha[29, 30:70] = 0.5  # a soft edge row
    return photo, alpha


def test_backgrounds_parse_or_are_refused(tmp_path):
    assert parse_background("transparent") is None
    assert parse_background("white") == Background("white", (255, 255, 255))
    assert parse_background("#FFcc00") == Background("ffcc00", (255, 204, 0))
    image = tmp_path / "beach.jpg"
    Image.new("RGB", (10, 10), (0, 0, 255)).save(image)
    assert parse_background(str(image)) == Background("beach", image=image)
    with pytest.raises(InputError, match="none of transparent, white"):
        parse_background("#12345")


def test_the_rgba_alpha_is_the_matte(photo_and_alpha):
    photo, alpha = photo_and_alpha
    rgba = cutout_rgba(photo, alpha)
    assert (
        rgba.shape == (120, 100, 4)
        and rgba[50, 50, 3] == 255
        and rgba[29, 40, 3] == 128
        and rgba[5, 5, 3] == 0
    )
    assert tuple(rgba[50, 50, :3]) == (200, 30, 30)


def test_a_white_render_is_exactly_white_at_the_border_and_centred_at_the_fill(photo_and_alpha):
    photo, alpha = photo_and_alpha
    out = render(photo, alpha, parse_background("white"), fill=0.5)
    border = np.concatenate([out[0], out[-1], out[:, 0], out[:, -1]])
    assert (border == 255).all()
    ys, xs = np.nonzero((out != 255).any(axis=2))
    assert ys.max() - ys.min() + 1 == pytest.approx(60, abs=2)  # 61 rows of product x 0.5 x 120 / 61
    assert abs((ys.min() + ys.max()) / 2 - 59.5) <= 1 and abs((xs.min() + xs.max()) / 2 - 49.5) <= 1


def test_a_shadow_darkens_the_background_under_the_product(photo_and_alpha):
    photo, alpha = photo_and_alpha
    plain = render(photo, alpha, parse_background("#00ff00"), fill=0.6)
    shaded = render(photo, alpha, parse_background("#00ff00"), fill=0.6, shadow=True)
    assert (shaded[..., 1] <= plain[..., 1]).all() and (shaded[..., 1] < plain[..., 1]).any()
    assert tuple(shaded[0, 0]) == (0, 255, 0)


def test_an_image_background_covers_the_frame(photo_and_alpha, tmp_path):
    photo, alpha = photo_and_alpha
    path = tmp_path / "sky.png"
    Image.new("RGB", (40, 10), (10, 20, 200)).save(path)
    out = render(photo, alpha, parse_background(str(path)))
    assert out.shape == (120, 100, 3) and tuple(out[0, 0]) == (10, 20, 200)
