"""Normalize: turn fetched image bytes into one 8-bit sRGB RGB image, or say why not.

In: the encoded bytes of one image and a `CleanConfig`. Out: a `NormalizedImage` (HxWx3 uint8 pixels,
the bytes to store, flags saying what was changed) or a `Rejection` with a `Reason` code. Nothing is
raised for bad input: every failure of untrusted bytes is data.

The header is checked before any pixel is decoded (pixel cap against decompression bombs, minimum side,
aspect ratio), then the first frame is fully decoded (truncated or corrupt data is rejected), EXIF
orientation is applied, transparency is composited on white, ICC profiles are converted to sRGB and
every other mode (CMYK, palette, grayscale, 16-bit) becomes 8-bit RGB. When none of that changed a
pixel of an RGB JPEG or PNG, the original bytes are stored as they came (no second lossy encode of
ground truth); otherwise the pixels are stored losslessly as PNG.

`decode_rgb(bytes or path)` is the same decoding for consumers outside ingest (`crisp upscale`): the
8-bit sRGB RGB Pillow image, or a `Rejection`, with only the pixel cap of the admission rules applied.
"""

from __future__ import annotations

import io
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
from PIL import (  # the plugins are imported so `Image.open(formats=...)` knows them without Image.init()
    BmpImagePlugin,  # noqa: F401
    ExifTags,
    GifImagePlugin,  # noqa: F401
    Image,
    ImageCms,
    ImageFile,
    ImageOps,
    JpegImagePlugin,  # noqa: F401
    PngImagePlugin,  # noqa: F401
    TiffImagePlugin,  # noqa: F401
    UnidentifiedImageError,
    WebPImagePlugin,  # noqa: F401
)

from pipeline.clean.config import CleanConfig
from pipeline.crawl.sniff import sniff_image_format
from schemas.reasons import Reason

# Formats the crawler's sniffer admits. Limiting `Image.open` to these keeps exotic decoders (EPS
# runs Ghostscript) off untrusted bytes. JPEG also opens camera MPO files (format "MPO").
ALLOWED_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF")
_KEEPABLE_FORMATS = ("jpeg", "png")
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")
_HIGH_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
_WHITE = (255, 255, 255)
_T = TypeVar("_T")


@dataclass(frozen=True)
class NormalizedImage:
    """One accepted image. `stored_bytes` decode (as RGB) to exactly `pixels`.

    flags name what was done to reach 8-bit sRGB: had_alpha (some pixel was not opaque; composited
    on white), animated (first frame taken), cmyk, palette, high_bit_depth, grayscale_source,
    exif_rotated, icc_converted, icc_ignored (a profile that does not fit the pixel mode).
    `image` holds the same pixels as the decoded RGB Pillow image, so hashing and metrics can start from
    it instead of converting `pixels` back (None when built by hand).
    """

    pixels: np.ndarray
    width: int
    height: int
    source_format: str
    stored_bytes: bytes
    stored_format: str
    reencoded: bool
    flags: frozenset[str]
    image: Image.Image | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class Rejection:
    """Why the bytes were not accepted: `reason` is a `Reason` value, `detail` is for people."""

    reason: str
    detail: str


def normalize(data: bytes, config: CleanConfig | None = None) -> NormalizedImage | Rejection:
    """Decode, validate and normalize one image (see the module docstring)."""
    config = config or CleanConfig()
    opened = _open(data)
    if isinstance(opened, Rejection):
        return opened
    rejection = _check_header(opened, config)
    if rejection is not None:
        return rejection
    return _guarded(lambda: _decode_and_normalize(opened, data))


def decode_rgb(
    source: bytes | str | os.PathLike[str], config: CleanConfig | None = None
) -> Image.Image | Rejection:
    """The pixels ingest would keep for one image, without ingest's admission rules.

    In: encoded bytes, or the path of a file holding them (read here; an unreadable path raises
    OSError). Out: an 8-bit sRGB RGB Pillow image, decoded exactly as `normalize` decodes it (EXIF
    orientation, alpha composited on white, ICC to sRGB, CMYK / palette / grayscale / 16-bit to 8-bit
    RGB), or a `Rejection` for bytes that are not a readable image. Of `config` only `max_pixels`
    applies (the decompression-bomb cap, checked from the header): the minimum side and aspect ratio
    decide what enters the dataset, not how an image decodes, so callers that serve images of any
    size (`crisp upscale`) get the same pixels as ingest for every image it would accept.
    """
    data = source if isinstance(source, bytes | bytearray | memoryview) else Path(source).read_bytes()
    data = bytes(data)
    config = config or CleanConfig()
    opened = _open(data)
    if isinstance(opened, Rejection):
        return opened
    rejection = _check_pixel_cap(opened, config.max_pixels)
    if rejection is not None:
        return rejection
    return _guarded(lambda: _decode_rgb8(opened)[0])


def _open(data: bytes) -> Image.Image | Rejection:
    """Open the header (no pixels decoded yet) with only the allowed decoders."""
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        raise ValueError(
            "PIL.ImageFile.LOAD_TRUNCATED_IMAGES is enabled in this process, so truncated images would be "
            "accepted with grey bottoms: set it back to False before cleaning"
        )
    if not data:
        return Rejection(Reason.NOT_AN_IMAGE, "empty body")
    try:
        return Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        return Rejection(Reason.DECOMPRESSION_BOMB, str(exc))
    except UnidentifiedImageError:
        claimed = sniff_image_format(data)
        if claimed is not None:  # right magic bytes, unreadable header: a corrupt image, not a web page
            return Rejection(Reason.DECODE_ERROR, f"corrupt {claimed} header")
        return Rejection(Reason.NOT_AN_IMAGE, f"not a {'/'.join(ALLOWED_FORMATS)} image")
    except DECODE_ERRORS as exc:  # Pillow raises several types on malformed headers; all mean the same
        return Rejection(Reason.DECODE_ERROR, f"header: {type(exc).__name__}: {exc}")


# What Pillow raises for bytes it cannot decode (fuzzing corrupt/truncated PNG, JPEG, WebP, GIF, BMP and
# TIFF under Pillow 13 gives OSError - UnidentifiedImageError included -, SyntaxError, ValueError and
# DecompressionBombError; EOFError, struct.error and the bomb warning, when warnings are errors, come from
# the same code; a broken embedded profile raises ImageCms.PyCMSError). Anything else raised while decoding
# or normalizing is a bug in Crisp and fails the run instead of rejecting every image as decode_error.
DECODE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    struct.error,
    ImageCms.PyCMSError,
    Image.DecompressionBombError,
    Image.DecompressionBombWarning,
)


def _guarded(decode: Callable[[], _T]) -> _T | Rejection:
    """Run the pixel decode; any failure of the bytes becomes a Rejection."""
    try:
        return decode()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        return Rejection(Reason.DECOMPRESSION_BOMB, str(exc))
    except DECODE_ERRORS as exc:  # truncated data, corrupt entropy coding, broken palettes or profiles
        return Rejection(Reason.DECODE_ERROR, f"{type(exc).__name__}: {exc}")


def _check_pixel_cap(image: Image.Image, max_pixels: int) -> Rejection | None:
    width, height = image.size
    if width * height > max_pixels:
        return Rejection(
            Reason.DECOMPRESSION_BOMB,
            f"{width}x{height} declares {width * height} pixels, over max_pixels={max_pixels}",
        )
    return None


def _check_header(image: Image.Image, config: CleanConfig) -> Rejection | None:
    """Size rules from the declared size alone, so a bomb never reaches the decoder."""
    rejection = _check_pixel_cap(image, config.max_pixels)
    if rejection is not None:
        return rejection
    width, height = image.size
    short_side, long_side = min(width, height), max(width, height)
    if short_side < config.min_side:
        return Rejection(Reason.TOO_SMALL, f"{width}x{height}: short side under min_side={config.min_side}")
    if long_side / short_side > config.max_aspect_ratio:
        return Rejection(
            Reason.BAD_ASPECT_RATIO,
            f"{width}x{height}: aspect {long_side / short_side:.2f} over max_aspect_ratio={config.max_aspect_ratio}",
        )
    return None


def _decode_rgb8(image: Image.Image) -> tuple[Image.Image, set[str], bool]:
    """Fully decode the first frame and bring it to 8-bit sRGB RGB: (image, flags, had transparency)."""
    flags: set[str] = set()
    opened_mode = image.mode
    # MPO extra pictures are previews or stereo views, not animation.
    if image.format != "MPO" and getattr(image, "n_frames", 1) > 1:
        flags.add("animated")
    # 16-bit RGB(A) PNG and TIFF decode straight to 8-bit modes; only the raw mode shows the depth.
    if opened_mode in _HIGH_BIT_MODES or any(";16" in str(tile.args) for tile in image.tile):
        flags.add("high_bit_depth")
    has_transparency = opened_mode in _ALPHA_MODES or "transparency" in image.info
    icc_profile = image.info.get("icc_profile")
    image.load()  # full decode of the first frame; raises on truncated or corrupt data

    orientation = _exif_orientation(image)
    if orientation in range(2, 9):
        image = ImageOps.exif_transpose(image)
        flags.add("exif_rotated")
    if has_transparency:
        image = _composite_on_white(image, flags)
    if icc_profile:
        image = _convert_to_srgb(image, icc_profile, flags)
    return _to_rgb8(image, flags), flags, has_transparency


def _decode_and_normalize(image: Image.Image, data: bytes) -> NormalizedImage:
    source_format = "jpeg" if image.format in ("JPEG", "MPO") else str(image.format).lower()
    opened_mode = image.mode
    image, flags, has_transparency = _decode_rgb8(image)

    pixels = np.asarray(image)
    keep_original = source_format in _KEEPABLE_FORMATS and opened_mode == "RGB" and not has_transparency
    keep_original = keep_original and not flags
    if keep_original:
        stored_bytes, stored_format = data, source_format
    else:
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", compress_level=1)  # lossless; level 1 trades size for speed
        stored_bytes, stored_format = buffer.getvalue(), "png"
    return NormalizedImage(
        pixels=pixels,
        width=image.width,
        height=image.height,
        source_format=source_format,
        stored_bytes=stored_bytes,
        stored_format=stored_format,
        reencoded=not keep_original,
        flags=frozenset(flags),
        image=image,
    )


def _exif_orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(ExifTags.Base.Orientation, 1))
    except Exception:  # a broken EXIF block does not make the pixels unusable; ignore it
        return 1


def _composite_on_white(image: Image.Image, flags: set[str]) -> Image.Image:
    """Any alpha or transparent colour becomes an opaque image over white (mode RGB)."""
    if image.mode in ("P", "PA"):
        flags.add("palette")
    if image.mode in ("1", "L", "LA", "La"):
        flags.add("grayscale_source")
    rgba = image.convert("RGBA")
    alpha = rgba.getchannel("A")
    if alpha.getextrema()[0] < 255:
        flags.add("had_alpha")
    flattened = Image.new("RGB", rgba.size, _WHITE)
    flattened.paste(rgba.convert("RGB"), mask=alpha)
    return flattened


def _convert_to_srgb(image: Image.Image, icc_profile: bytes, flags: set[str]) -> Image.Image:
    """Apply an embedded profile when it is not already sRGB and fits the pixel mode."""
    profile = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
    space = profile.profile.xcolor_space.strip()
    fits = {"RGB": ("RGB",), "CMYK": ("CMYK",), "GRAY": ("L",)}.get(space, ())
    if image.mode not in fits:
        flags.add("icc_ignored")
        return image
    if space == "RGB" and "srgb" in (profile.profile.profile_description or "").lower():
        return image  # already sRGB: converting would only add rounding
    if image.mode == "CMYK":
        flags.add("cmyk")
    if image.mode == "L":
        flags.add("grayscale_source")
    srgb = ImageCms.createProfile("sRGB")
    converted = ImageCms.profileToProfile(image, profile, srgb, outputMode="RGB")
    assert converted is not None  # profileToProfile returns None only with inPlace=True
    flags.add("icc_converted")
    return converted


def _to_rgb8(image: Image.Image, flags: set[str]) -> Image.Image:
    """Every remaining mode to 8-bit RGB; 16-bit values are scaled, not clipped."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        flags.update({"high_bit_depth", "grayscale_source"})
        wide = np.clip(np.asarray(image, dtype=np.int64), 0, 65535)
        gray = ((wide * 255 + 32767) // 65535).astype(np.uint8)
        return Image.fromarray(gray).convert("RGB")
    if mode == "F":
        flags.update({"high_bit_depth", "grayscale_source"})
        gray = np.clip(np.rint(np.asarray(image, dtype=np.float64)), 0, 255).astype(np.uint8)
        return Image.fromarray(gray).convert("RGB")
    if mode in ("1", "L"):
        flags.add("grayscale_source")
    elif mode == "P":
        flags.add("palette")
    elif mode == "CMYK":
        flags.add("cmyk")
    return image.convert("RGB")
