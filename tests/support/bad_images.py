"""Small synthetic images for ingest tests: the odd encodings of issue 3's bad-input matrix.

In: a seed (each seed draws a different blocky picture, so two cases are never near duplicates of each
other by pHash) and a size. Out: encoded bytes: plain JPEG / PNG, CMYK JPEG, 16-bit PNG, palette PNG with a
transparent colour, animated GIF, EXIF-rotated JPEG, a truncated (corrupt) JPEG, and a PNG whose header
declares a decompression bomb (no pixel data needed: the cleaner refuses it from the header).
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image


def blocks(seed: int, width: int = 320, height: int = 320) -> Image.Image:
    """An RGB picture of 8x8 random colour blocks, scaled up without smoothing."""
    rng = np.random.default_rng(seed)
    cells = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
    return Image.fromarray(cells).resize((width, height), Image.Resampling.NEAREST)


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def jpeg(seed: int, width: int = 320, height: int = 320) -> bytes:
    return encode(blocks(seed, width, height), "JPEG", quality=92)


def png(seed: int, width: int = 320, height: int = 320) -> bytes:
    return encode(blocks(seed, width, height), "PNG")


def cmyk_jpeg(seed: int) -> bytes:
    return encode(blocks(seed).convert("CMYK"), "JPEG", quality=92)


def png_16bit(seed: int) -> bytes:
    gray = np.asarray(blocks(seed).convert("L"), dtype=np.uint16) * 257
    image = Image.fromarray(gray)  # uint16 -> mode I;16
    assert image.mode.startswith("I;16"), image.mode
    return encode(image, "PNG")


def palette_png_with_transparency(seed: int) -> bytes:
    image = blocks(seed).quantize(colors=16)
    return encode(image, "PNG", transparency=0)


def animated_gif(seed: int) -> bytes:
    first, second = blocks(seed).convert("P"), blocks(seed + 1000).convert("P")
    return encode(first, "GIF", save_all=True, append_images=[second], duration=100, loop=0)


def exif_rotated_jpeg(seed: int, width: int = 400, height: int = 300) -> bytes:
    """A landscape JPEG whose EXIF orientation (6 = rotate 90 degrees clockwise) makes it portrait."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(blocks(seed, width, height), "JPEG", quality=92, exif=exif.tobytes())


def corrupt_jpeg(seed: int) -> bytes:
    """A JPEG cut off half way: it sniffs as JPEG and downloads whole, but cannot be decoded."""
    data = jpeg(seed)
    return data[: len(data) // 2]


def bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A valid PNG header declaring width x height 1-bit pixels, with an empty image stream."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (
            struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
        )

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )


def as_png(data: bytes) -> bytes:
    """The decoded pixels of `data` stored losslessly as PNG: other bytes, the same picture."""
    with Image.open(io.BytesIO(data)) as image:
        return encode(image.convert("RGB"), "PNG", compress_level=1)


def resized_copy(data: bytes, factor: float = 0.8, quality: int = 75) -> bytes:
    """The image re-encoded as JPEG at `quality` after a resize by `factor` (a near duplicate)."""
    with Image.open(io.BytesIO(data)) as image:
        rgb = image.convert("RGB")
    size = (round(rgb.width * factor), round(rgb.height * factor))
    return encode(rgb.resize(size, Image.Resampling.LANCZOS), "JPEG", quality=quality)
