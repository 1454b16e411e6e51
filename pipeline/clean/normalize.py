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
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

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
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        raise ValueError(
            "PIL.ImageFile.LOAD_TRUNCATED_IMAGES is enabled in this process, so truncated images would be "
            "accepted with grey bottoms: set it back to False before cleaning"
        )
    if not data:
        return Rejection(Reason.NOT_AN_IMAGE, "empty body")
    try:
        image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        return Rejection(Reason.DECOMPRESSION_BOMB, str(exc))
    except UnidentifiedImageError:
        claimed = sniff_image_format(data)
        if claimed is not None:  # right magic bytes, unreadable header: a corrupt image, not a web page
            return Rejection(Reason.DECODE_ERROR, f"corrupt {claimed} header")
        return Rejection(Reason.NOT_AN_IMAGE, f"not a {'/'.join(ALLOWED_FORMATS)} image")
    except Exception as exc:  # Pillow raises many types on malformed headers; all mean the same here
        return Rejection(Reason.DECODE_ERROR, f"header: {type(exc).__name__}: {exc}")

    rejection = _check_header(image, config)
    if rejection is not None:
        return rejection
    try:
        return _decode_and_normalize(image, data)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        return Rejection(Reason.DECOMPRESSION_BOMB, str(exc))
    except Exception as exc:  # truncated data, corrupt entropy coding, broken palettes or profiles
        return Rejection(Reason.DECODE_ERROR, f"{type(exc).__name__}: {exc}")


def _check_header(image: Image.Image, config: CleanConfig) -> Rejection | None:
    """Size rules from the declared size alone, so a bomb never reaches the decoder."""
    width, height = image.size
    if width * height > config.max_pixels:
        return Rejection(
            Reason.DECOMPRESSION_BOMB,
            f"{width}x{height} declares {width * height} pixels, over max_pixels={config.max_pixels}",
        )
    short_side, long_side = min(width, height), max(width, height)
    if short_side < config.min_side:
        return Rejection(Reason.TOO_SMALL, f"{width}x{height}: short side under min_side={config.min_side}")
    if long_side / short_side > config.max_aspect_ratio:
        return Rejection(
            Reason.BAD_ASPECT_RATIO,
            f"{width}x{height}: aspect {long_side / short_side:.2f} over max_aspect_ratio={config.max_aspect_ratio}",
        )
    return None


def _decode_and_normalize(image: Image.Image, data: bytes) -> NormalizedImage:
    flags: set[str] = set()
    source_format = "jpeg" if image.format in ("JPEG", "MPO") else str(image.format).lower()
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
    image = _to_rgb8(image, flags)

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
