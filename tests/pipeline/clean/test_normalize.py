"""normalize: real photos and hostile variants built from them with Pillow (the image-level bad inputs)."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageCms, ImageFile

from pipeline.clean import CleanConfig, NormalizedImage, Rejection, normalize
from pipeline.clean.normalize import decode_rgb
from schemas.reasons import Reason
from tests.pipeline.clean.conftest import encode


def decoded(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def accepted(data: bytes, config: CleanConfig | None = None) -> NormalizedImage:
    result = normalize(data, config)
    assert isinstance(result, NormalizedImage), result
    # The stored bytes always decode to exactly the normalized pixels.
    assert np.array_equal(decoded(result.stored_bytes), result.pixels)
    assert result.pixels.dtype == np.uint8 and result.pixels.shape == (result.height, result.width, 3)
    # ... and the decoded Pillow image handed on to hashing and metrics holds those same pixels.
    assert result.image is not None and result.image.mode == "RGB"
    assert np.array_equal(np.asarray(result.image), result.pixels)
    return result


def rejected(data: bytes, reason: Reason, config: CleanConfig | None = None) -> Rejection:
    result = normalize(data, config)
    assert isinstance(result, Rejection), f"expected {reason}, got an accepted image"
    assert result.reason == reason, result
    assert result.detail
    return result


@pytest.fixture(scope="module")
def rgb(apparel_bytes: bytes) -> Image.Image:
    return Image.open(io.BytesIO(apparel_bytes)).convert("RGB")


def test_real_baseline_jpeg_keeps_its_original_bytes(apparel_bytes: bytes) -> None:
    result = accepted(apparel_bytes)
    assert result.stored_bytes is apparel_bytes
    assert (result.stored_format, result.source_format, result.reencoded) == ("jpeg", "jpeg", False)
    assert result.flags == frozenset()
    assert (result.width, result.height) == (1274, 1580)


def test_rgb_png_keeps_its_original_bytes(rgb: Image.Image) -> None:
    data = encode(rgb, "PNG")
    result = accepted(data)
    assert result.stored_bytes is data and result.stored_format == "png" and not result.reencoded
    assert np.array_equal(result.pixels, np.asarray(rgb))


@pytest.mark.parametrize("keep", [0.5, 0.9, 0.999])
def test_truncated_jpeg_is_a_decode_error(apparel_bytes: bytes, keep: float) -> None:
    rejected(apparel_bytes[: int(len(apparel_bytes) * keep)], Reason.DECODE_ERROR)


def test_corrupt_jpeg_is_a_decode_error(apparel_bytes: bytes) -> None:
    header_flipped = bytearray(apparel_bytes)
    for index in range(200, 400):  # quantization and Huffman tables
        header_flipped[index] ^= 0xFF
    rejected(bytes(header_flipped), Reason.DECODE_ERROR)
    data_flipped = bytearray(apparel_bytes)
    middle = len(data_flipped) // 2
    for index in range(middle, middle + 2000):  # entropy-coded data
        data_flipped[index] ^= 0x5A
    rejected(bytes(data_flipped), Reason.DECODE_ERROR)


def test_a_bug_after_the_decoder_fails_loudly_instead_of_rejecting(
    apparel_bytes: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only Pillow's decode errors become decode_error: a regression in Crisp's own code must not quietly
    reject every image."""
    import importlib

    module = importlib.import_module("pipeline.clean.normalize")  # the package re-exports the function

    def broken(image, flags):
        raise ZeroDivisionError("a bug in the colour conversion")

    monkeypatch.setattr(module, "_to_rgb8", broken)
    with pytest.raises(ZeroDivisionError):
        normalize(apparel_bytes)


@pytest.mark.parametrize(
    "data",
    [b"", b"<html><body>404 not found</body></html>", bytes(range(256)) * 40, b"%!PS-Adobe-3.0 EPSF-3.0\n"],
    ids=["empty", "html", "binary", "eps"],
)
def test_non_image_bytes_are_not_an_image(data: bytes) -> None:
    rejected(data, Reason.NOT_AN_IMAGE)


def test_decompression_bomb_png_is_rejected_from_its_header(monkeypatch: pytest.MonkeyPatch) -> None:
    bomb = encode(Image.new("1", (9000, 9000)), "PNG")  # 81 M pixels in about 10 KB
    assert len(bomb) < 20_000

    def no_decoding(self: ImageFile.ImageFile) -> None:
        raise AssertionError("the decoder ran on a decompression bomb")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    result = rejected(bomb, Reason.DECOMPRESSION_BOMB)
    assert "9000x9000" in result.detail


def test_patched_ihdr_bomb_over_pillows_own_limit_is_rejected() -> None:
    small = encode(Image.new("1", (64, 64)), "PNG")
    ihdr = bytearray(small[8:33])  # length, "IHDR", 13 bytes of header, CRC
    ihdr[8:16] = struct.pack(">II", 20000, 20000)
    ihdr[21:25] = struct.pack(">I", zlib.crc32(bytes(ihdr[4:21])))
    rejected(small[:8] + bytes(ihdr) + small[33:], Reason.DECOMPRESSION_BOMB)


def test_pixel_cap_is_configurable_and_global_limits_are_untouched(apparel_bytes: bytes) -> None:
    before = (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES)
    rejected(apparel_bytes, Reason.DECOMPRESSION_BOMB, CleanConfig(max_pixels=1_000_000))
    assert before == (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES)


def test_globally_enabled_truncated_loading_is_refused(
    apparel_bytes: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(ValueError, match="LOAD_TRUNCATED_IMAGES"):
        normalize(apparel_bytes[: len(apparel_bytes) // 2])


def test_cmyk_jpeg_becomes_rgb(rgb: Image.Image) -> None:
    result = accepted(encode(rgb.convert("CMYK"), "JPEG", quality=95))
    assert result.flags == {"cmyk"} and result.reencoded and result.stored_format == "png"
    difference = np.abs(result.pixels.astype(int) - np.asarray(rgb, dtype=int))
    assert difference.mean() < 3.0


def test_16_bit_grayscale_png_is_scaled_not_clipped(rgb: Image.Image) -> None:
    gray = np.asarray(rgb.convert("L"))
    wide = gray.astype(np.uint16) * 257  # 8-bit values spread over the 16-bit range
    image16 = Image.fromarray(wide)
    assert image16.mode == "I;16"
    result = accepted(encode(image16, "PNG"))
    assert result.flags == {"high_bit_depth", "grayscale_source"}
    assert all(np.array_equal(result.pixels[..., channel], gray) for channel in range(3))


def test_16_bit_rgb_png_is_flagged_and_reduced_to_8_bits() -> None:
    height, width = 300, 400
    wide = np.random.default_rng(0).integers(0, 65536, (height, width, 3)).astype(">u2")
    raw = b"".join(b"\x00" + wide[row].tobytes() for row in range(height))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    result = accepted(png)
    assert result.flags == {"high_bit_depth"} and result.reencoded
    assert np.abs(result.pixels.astype(int) - np.rint(wide / 257.0)).max() <= 1


def test_palette_png_with_transparency_is_composited_on_white(rgb: Image.Image) -> None:
    palette = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    indices = np.asarray(palette)
    transparent_index = int(indices[palette.height // 2, palette.width // 2])  # a dark garment colour
    assert max(palette.getpalette()[3 * transparent_index : 3 * transparent_index + 3]) < 128
    result = accepted(encode(palette, "PNG", transparency=transparent_index))
    assert result.flags == {"palette", "had_alpha"} and result.stored_format == "png"
    assert (result.pixels[indices == transparent_index] == 255).all()
    opaque = indices != transparent_index
    expected = np.asarray(palette.convert("RGB"))
    assert np.array_equal(result.pixels[opaque], expected[opaque])


def test_rgba_transparency_is_composited_on_white_and_opaque_pixels_kept(rgb: Image.Image) -> None:
    rgba = rgb.convert("RGBA")
    alpha = np.full((rgb.height, rgb.width), 255, dtype=np.uint8)
    alpha[:200] = 0
    alpha[200:300] = 128
    rgba.putalpha(Image.fromarray(alpha))
    result = accepted(encode(rgba, "PNG"))
    source = np.asarray(rgb, dtype=int)
    assert result.flags == {"had_alpha"}
    assert (result.pixels[:200] == 255).all()
    half = result.pixels[200:300].astype(int)
    assert np.abs(half - (source[200:300] * 128 + 255 * 127) / 255).max() <= 1
    assert np.array_equal(result.pixels[300:], np.asarray(rgb)[300:])


def test_opaque_rgba_is_not_flagged_but_stored_as_rgb_png(rgb: Image.Image) -> None:
    result = accepted(encode(rgb.convert("RGBA"), "PNG"))
    assert result.flags == frozenset() and result.reencoded
    assert np.array_equal(result.pixels, np.asarray(rgb))


def test_animated_gif_takes_the_first_frame(rgb: Image.Image) -> None:
    first = rgb.resize((400, 500))
    second = first.rotate(90)
    data = encode(first, "GIF", save_all=True, append_images=[second], duration=100, loop=0)
    result = accepted(data)
    assert "animated" in result.flags and "palette" in result.flags
    assert result.source_format == "gif" and result.stored_format == "png"
    with Image.open(io.BytesIO(data)) as gif:
        assert gif.n_frames == 2
        expected = np.asarray(gif.convert("RGB"))  # frame 0
    assert np.array_equal(result.pixels, expected)


def test_exif_rotated_jpeg_is_transposed(rgb: Image.Image) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    plain = encode(rgb, "JPEG", quality=92)
    rotated = encode(rgb, "JPEG", quality=92, exif=exif.tobytes())
    result = accepted(rotated)
    assert result.flags == {"exif_rotated"} and result.reencoded and result.stored_format == "png"
    assert (result.width, result.height) == (rgb.height, rgb.width)
    assert np.array_equal(result.pixels, np.rot90(decoded(plain), k=-1))


def test_grayscale_jpeg_becomes_three_equal_channels(rgb: Image.Image) -> None:
    result = accepted(encode(rgb.convert("L"), "JPEG", quality=90))
    assert result.flags == {"grayscale_source"}
    assert np.array_equal(result.pixels[..., 0], result.pixels[..., 2])


def test_webp_is_stored_as_lossless_png(rgb: Image.Image) -> None:
    data = encode(rgb, "WEBP", quality=80)
    result = accepted(data)
    assert (result.source_format, result.stored_format, result.reencoded) == ("webp", "png", True)
    assert np.array_equal(result.pixels, decoded(data))


def _swapped_primaries_profile() -> bytes:
    """sRGB with the red and green primaries swapped and a new name: a real, non-sRGB RGB profile."""
    data = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    tags = {}
    for index in range(struct.unpack(">I", data[128:132])[0]):
        entry = 132 + 12 * index
        tags[bytes(data[entry : entry + 4])] = entry
    red, green = tags[b"rXYZ"], tags[b"gXYZ"]
    data[red + 4 : red + 12], data[green + 4 : green + 12] = (
        data[green + 4 : green + 12],
        data[red + 4 : red + 12],
    )
    name = "sRGB".encode("utf-16-be")
    data[data.index(name) : data.index(name) + len(name)] = "Test".encode("utf-16-be")
    return bytes(data)


def test_non_srgb_icc_profile_is_converted(rgb: Image.Image) -> None:
    red = Image.new("RGB", (400, 400), (255, 0, 0))
    result = accepted(encode(red, "PNG", icc_profile=_swapped_primaries_profile()))
    assert result.flags == {"icc_converted"} and result.reencoded
    r, g, b = result.pixels[200, 200].astype(int)
    assert g > 200 and r < 100, "the source red is this profile's green"


def test_srgb_icc_profile_keeps_the_original(rgb: Image.Image) -> None:
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    data = encode(rgb, "JPEG", quality=90, icc_profile=srgb)
    result = accepted(data)
    assert result.stored_bytes is data and result.flags == frozenset()


@pytest.mark.parametrize("size", [(100, 120), (255, 1000), (1, 1)])
def test_tiny_image_is_too_small(rgb: Image.Image, size: tuple[int, int]) -> None:
    rejected(encode(rgb.resize(size), "PNG"), Reason.TOO_SMALL)


def test_extreme_aspect_ratio_is_rejected_and_configurable(rgb: Image.Image) -> None:
    strip = encode(rgb.resize((2000, 300)), "JPEG")
    rejected(strip, Reason.BAD_ASPECT_RATIO)
    assert isinstance(normalize(strip, CleanConfig(max_aspect_ratio=7.0)), NormalizedImage)
    rejected(strip, Reason.TOO_SMALL, CleanConfig(min_side=400, max_aspect_ratio=7.0))


# -- decode_rgb: ingest's decoding for serving (crisp upscale), without the admission rules -----------


def _odd_encodings(rgb: Image.Image) -> dict[str, bytes]:
    small = rgb.resize((300, 372))
    exif = Image.Exif()
    exif[0x0112] = 6
    gray16 = Image.fromarray(np.asarray(small.convert("L"), dtype=np.uint16) * 257)
    rgba = small.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(small.size))
    return {
        "plain_jpeg": encode(small, "JPEG", quality=90),
        "exif_rotated": encode(small, "JPEG", quality=92, exif=exif.tobytes()),
        "cmyk": encode(small.convert("CMYK"), "JPEG", quality=92),
        "png_16bit": encode(gray16, "PNG"),
        "palette_transparent": encode(small.quantize(colors=16), "PNG", transparency=0),
        "rgba": encode(rgba, "PNG"),
        "icc": encode(small, "PNG", icc_profile=_swapped_primaries_profile()),
    }


def test_decode_rgb_gives_exactly_the_pixels_ingest_keeps(rgb: Image.Image, tmp_path) -> None:
    for name, data in _odd_encodings(rgb).items():
        ingested = accepted(data)
        assert ingested.flags or name == "plain_jpeg", name
        image = decode_rgb(data)
        assert isinstance(image, Image.Image) and image.mode == "RGB", name
        assert np.array_equal(np.asarray(image), ingested.pixels), name
        path = tmp_path / f"{name}.img"
        path.write_bytes(data)
        assert np.array_equal(np.asarray(decode_rgb(path)), ingested.pixels), name
        assert np.array_equal(np.asarray(decode_rgb(str(path))), ingested.pixels), name


def test_decode_rgb_skips_the_size_rules_but_keeps_the_pixel_cap(rgb: Image.Image) -> None:
    tiny, strip = encode(rgb.resize((7, 5)), "PNG"), encode(rgb.resize((2000, 100)), "PNG")
    assert decode_rgb(tiny).size == (7, 5) and decode_rgb(strip).size == (2000, 100)
    capped = decode_rgb(strip, CleanConfig(max_pixels=100_000, min_side=64))
    assert isinstance(capped, Rejection) and capped.reason == Reason.DECOMPRESSION_BOMB


def test_decode_rgb_rejects_bad_bytes_as_data(apparel_bytes: bytes) -> None:
    cases = {Reason.DECODE_ERROR: apparel_bytes[: len(apparel_bytes) // 2], Reason.NOT_AN_IMAGE: b"<html>"}
    for reason, data in cases.items():
        result = decode_rgb(data)
        assert isinstance(result, Rejection) and result.reason == reason and result.detail
