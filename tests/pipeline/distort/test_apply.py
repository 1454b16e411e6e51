"""Tests for pipeline.distort.apply: every grid member on real photos, bit-exact, validated first."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from pipeline.distort import FAMILIES, LEVELS, distort, grid, grid_params, quality_canvas
from pipeline.sr_metrics import psnr_y

REPO = Path(__file__).resolve().parents[3]
SIDE = 128  # small canvases keep the whole grid of three photos well under a second


def _photo_paths(product_photos: Path) -> list[Path]:
    """Three real photos spread over the sorted set: a colourful cover, dark and brown apparel."""
    paths = sorted(product_photos.glob("*.jpg"))
    return [paths[i] for i in range(0, len(paths), len(paths) // 3)][:3]


@pytest.fixture(scope="module")
def canvases(product_photos: Path) -> dict[str, np.ndarray]:
    return {
        path.stem: quality_canvas(np.array(Image.open(path).convert("RGB")), SIDE)
        for path in _photo_paths(product_photos)
    }


def _grid_digest(image_id: str, canvas: np.ndarray) -> str:
    digest = hashlib.sha256()
    for params in grid(image_id, 1)[1:]:
        digest.update(distort(canvas, params).tobytes())
    return digest.hexdigest()


def test_every_member_keeps_size_and_dtype_and_changes_the_pixels(canvases: dict[str, np.ndarray]) -> None:
    for image_id, canvas in canvases.items():
        before = canvas.copy()
        for params in grid(image_id, 1)[1:]:
            out = distort(canvas, params)
            assert out.dtype == np.uint8 and out.shape == canvas.shape, params
            assert not np.array_equal(out, canvas), f"{params} left {image_id} unchanged"
        np.testing.assert_array_equal(canvas, before)  # pure: the input is never written


def test_pristine_is_an_identical_copy(canvases: dict[str, np.ndarray]) -> None:
    canvas = next(iter(canvases.values()))
    out = distort(canvas, grid_params("x", "jpeg", 0, 1))
    np.testing.assert_array_equal(out, canvas)
    assert out is not canvas


def test_bit_exact_across_calls_thread_counts_and_processes(
    canvases: dict[str, np.ndarray], product_photos: Path
) -> None:
    path = _photo_paths(product_photos)[0]
    image_id, canvas = path.stem, canvases[path.stem]
    here = _grid_digest(image_id, canvas)
    assert _grid_digest(image_id, canvas) == here
    threads = cv2.getNumThreads()
    try:
        cv2.setNumThreads(2)  # OpenCV splits rows between threads: the bytes must not depend on it
        assert _grid_digest(image_id, canvas) == here
    finally:
        cv2.setNumThreads(threads)
    script = (
        "import hashlib, sys, numpy as np; from PIL import Image;"
        "from pipeline.distort import distort, grid, quality_canvas;"
        f"c = quality_canvas(np.array(Image.open(sys.argv[1]).convert('RGB')), {SIDE}); d = hashlib.sha256();"
        f"[d.update(distort(c, p).tobytes()) for p in grid({image_id!r}, 1)[1:]]; print(d.hexdigest())"
    )
    fresh = subprocess.run(
        [sys.executable, "-c", script, str(path)], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert fresh.stdout.strip() == here


def test_double_jpeg_output_is_aligned_with_its_input(canvases: dict[str, np.ndarray]) -> None:
    canvas = next(iter(canvases.values()))
    params = grid_params("x", "double_jpeg", 2, 1)
    out = distort(canvas, params)
    shifted = np.roll(canvas, (params["shift_y"], params["shift_x"]), axis=(0, 1))
    assert psnr_y(out, canvas) > psnr_y(out, shifted) + 5.0
    assert psnr_y(out, canvas) > 25.0


def test_noise_has_the_recorded_strength() -> None:
    gray = np.full((200, 200, 3), 118, np.uint8)  # sRGB 118 is 0.181 in linear light
    gaussian = distort(gray, {"family": "gaussian_noise", "level": 1, "sigma": 10.0, "seed": 7})
    assert abs(gaussian.astype(float).std() - 10.0) < 0.3
    shot = distort(gray, {"family": "poisson_noise", "level": 1, "photons": 400.0, "seed": 7})
    linear = ((shot / 255.0 + 0.055) / 1.055) ** 2.4
    assert abs(linear.std() - np.sqrt(0.181 / 400)) < 0.002  # Poisson: variance = mean / photons
    again = distort(gray, {"family": "poisson_noise", "level": 1, "photons": 400.0, "seed": 8})
    assert not np.array_equal(shot, again)


def test_tone_families_act_in_linear_light_and_on_the_mean() -> None:
    gray = np.full((16, 16, 3), 118, np.uint8)
    brighter = distort(gray, {"family": "overexposure", "level": 1, "stops": 1.0})
    assert int(brighter[0, 0, 0]) == 162  # 0.181 * 2 = 0.362 linear is sRGB 162.2
    darker = distort(gray, {"family": "underexposure", "level": 1, "stops": 1.0})
    assert int(darker[0, 0, 0]) == 85  # 0.0906 linear is sRGB 84.9
    ramp = np.repeat(np.arange(0, 256, 2, dtype=np.uint8)[None, :, None], 3, axis=2).repeat(4, axis=0)
    flat = distort(ramp, {"family": "contrast_loss", "level": 1, "factor": 0.5})
    assert abs(flat.mean() - ramp.mean()) < 0.6 and abs(flat.std() - 0.5 * ramp.std()) < 0.5
    poster = distort(ramp, {"family": "posterization", "level": 1, "levels": 4})
    assert set(np.unique(poster)) == {0, 85, 170, 255}


def test_colour_families_move_chroma(canvases: dict[str, np.ndarray]) -> None:
    white = np.full((8, 8, 3), 255, np.uint8)
    yellow = distort(white, {"family": "colour_cast", "level": 1, "strength": 0.2, "hue_deg": 90.0})
    red, green, blue = (int(v) for v in yellow[0, 0])
    assert max(red, green) == 255 and blue < green - 20  # white turned yellowish, its max kept
    canvas = next(iter(canvases.values()))
    saturated = distort(canvas, grid_params("x", "oversaturation", 3, 1))
    chroma = [
        np.hypot(*cv2.cvtColor(im.astype(np.float32) / 255, cv2.COLOR_RGB2Lab)[..., 1:].transpose(2, 0, 1))
        for im in (canvas, saturated)
    ]
    assert chroma[1].mean() > 1.3 * chroma[0].mean()
    bled = distort(canvas, grid_params("x", "chroma_subsampling", 5, 1))
    luma = [cv2.cvtColor(im, cv2.COLOR_RGB2YCrCb)[..., 0].astype(int) for im in (canvas, bled)]
    assert np.abs(luma[0] - luma[1]).mean() < 1.5  # luma kept, only chroma resampled
    assert psnr_y(bled, canvas) > 35.0


def test_blur_families_remove_detail_along_their_direction(canvases: dict[str, np.ndarray]) -> None:
    canvas = next(iter(canvases.values())).astype(np.float32)
    horizontal = distort(
        canvas.astype(np.uint8), {"family": "motion_blur", "level": 1, "length": 9.0, "angle_deg": 0.0}
    )

    def energy(im: np.ndarray, axis: int) -> float:
        return float(np.abs(np.diff(im.astype(np.float32), axis=axis)).mean())

    vertical = distort(
        canvas.astype(np.uint8), {"family": "motion_blur", "level": 1, "length": 9.0, "angle_deg": 90.0}
    )
    # A horizontal smear removes far more of the detail across columns than across rows; vertical the reverse.
    kept_across_columns = energy(horizontal, 1) / energy(canvas, 1)
    kept_across_rows = energy(horizontal, 0) / energy(canvas, 0)
    assert kept_across_columns < 0.4 < 0.7 < kept_across_rows  # lt01: 0.29 and 0.85
    assert energy(vertical, 0) / energy(canvas, 0) < 0.4 < 0.7 < energy(vertical, 1) / energy(canvas, 1)
    for family in ("gaussian_blur", "defocus_blur", "fake_hr"):
        soft = [distort(canvas.astype(np.uint8), grid_params("x", family, lv, 1)) for lv in (1, LEVELS)]
        assert energy(canvas, 0) > energy(soft[0], 0) > energy(soft[1], 0), family


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"family": "gaussian_blur", "level": 1, "sigma": 1.0, "bogus": 3}, "bogus: Extra inputs"),
        ({"family": "gaussian_blur", "level": 1, "sigma": -1.0}, "sigma: Input should be greater than 0"),
        ({"family": "jpeg", "level": 1}, "quality: Field required"),
        ({"family": "jpeg", "level": 1, "quality": 40.0}, "quality: Input should be a valid integer"),
        (
            {"family": "gaussian_noise", "level": 1, "sigma": 5.0, "seed": True},
            "seed: Input should be a valid",
        ),
        ({"family": "gaussian_noise", "level": 1, "sigma": 5.0, "seed": 2**60}, "seed: Input should be less"),
        ({"family": "jpeg", "level": 9, "quality": 40}, "level: Input should be less than or equal to 5"),
        (
            {
                "family": "double_jpeg",
                "level": 1,
                "first_quality": 50,
                "second_quality": 60,
                "shift_y": 0,
                "shift_x": 3,
            },
            "shift_y",
        ),
        ({"family": "pristine", "level": 1}, "level: Input should be 0"),
        ({"family": "sepia", "level": 1}, "'family' must be one of pristine, gaussian_blur"),
        ({"level": 1}, "'family' must be one of"),
    ],
)
def test_bad_params_are_refused_naming_the_key(params: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        distort(np.zeros((16, 16, 3), np.uint8), params)


def test_params_are_checked_before_the_image() -> None:
    with pytest.raises(ValueError, match="sigma"):
        distort(np.zeros((16, 16), np.float32), {"family": "gaussian_blur", "level": 1, "sigma": 0.0})
    with pytest.raises(ValueError, match="uint8"):
        distort(np.zeros((16, 16, 3), np.float32), {"family": "gaussian_blur", "level": 1, "sigma": 1.0})
    with pytest.raises(ValueError, match="mapping"):
        distort(np.zeros((16, 16, 3), np.uint8), [("family", "jpeg")])  # type: ignore[arg-type]


@pytest.mark.parametrize("family", FAMILIES)
def test_odd_sizes_and_tiny_images_work(family: str) -> None:
    image = np.random.default_rng(3).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    for level in (1, LEVELS):
        assert distort(image, grid_params("odd", family, level, 1)).shape == image.shape
