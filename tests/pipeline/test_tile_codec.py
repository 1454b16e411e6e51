"""Tests for pipeline.tile_codec: lossless round trips on real photos, sniffing, hostile bytes refused."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import zstandard
from PIL import Image

from pipeline.tile_codec import MAX_TILE_BYTES, TileDecodeError, decode_tile, encode_tile


@pytest.fixture(scope="module")
def photo(product_photos: Path) -> np.ndarray:
    with Image.open(sorted(product_photos.glob("*.jpg"))[0]) as img:
        return np.asarray(img.convert("RGB"))[:300, :400]


@pytest.mark.parametrize("codec", ["png", "zstd"])
def test_round_trip_is_lossless(photo: np.ndarray, codec: str) -> None:
    data = encode_tile(photo, codec)
    assert np.array_equal(decode_tile(data), photo)
    assert np.array_equal(decode_tile(memoryview(data)), photo)  # a slice of a fetched block
    assert encode_tile(photo, codec) == data  # deterministic bytes
    assert len(data) < photo.nbytes  # and compressed


@pytest.mark.parametrize("codec", ["png", "zstd"])
def test_grey_tiles_decode_as_rgb(photo: np.ndarray, codec: str) -> None:
    grey = np.ascontiguousarray(photo[..., 1])
    assert np.array_equal(decode_tile(encode_tile(grey, codec)), np.repeat(grey[..., None], 3, axis=2))


def test_zstd_is_a_standard_npy_inside(photo: np.ndarray) -> None:
    raw = zstandard.ZstdDecompressor().decompress(encode_tile(photo, "zstd"))
    assert np.array_equal(np.load(io.BytesIO(raw), allow_pickle=False), photo)


def test_bad_arrays_and_codecs_raise(photo: np.ndarray) -> None:
    with pytest.raises(ValueError, match="uint8"):
        encode_tile(photo.astype(np.float32), "zstd")
    with pytest.raises(ValueError, match="unknown tile codec 'jpeg'"):
        encode_tile(photo, "jpeg")  # type: ignore[arg-type]


def test_hostile_bytes_are_refused(photo: np.ndarray) -> None:
    with pytest.raises(TileDecodeError, match="not a PNG or zstd tile"):
        decode_tile(b"GIF89a....")
    with pytest.raises(TileDecodeError, match="corrupt PNG"):
        decode_tile(encode_tile(photo, "png")[:200])
    with pytest.raises(TileDecodeError, match="corrupt zstd"):
        decode_tile(encode_tile(photo, "zstd")[:200])
    unsized = zstandard.ZstdCompressor(write_content_size=False).compress(b"x" * 1000)
    with pytest.raises(TileDecodeError, match="unknown or over"):
        decode_tile(unsized)
    bomb = zstandard.ZstdCompressor().compress(bytes(MAX_TILE_BYTES + 1))  # 256 MiB of zeros, ~8 KiB packed
    with pytest.raises(TileDecodeError, match="over"):
        decode_tile(bomb)
    pickled = io.BytesIO()
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(TileDecodeError, match="corrupt zstd"):
        decode_tile(zstandard.ZstdCompressor().compress(pickled.getvalue()))
    floats = io.BytesIO()
    np.save(floats, np.zeros((4, 4, 3), np.float32))
    with pytest.raises(TileDecodeError, match="not a uint8 image"):
        decode_tile(zstandard.ZstdCompressor().compress(floats.getvalue()))


def test_threads_decode_at_once(photo: np.ndarray) -> None:
    """The loaders decode in threads: many at once must all succeed (CPython 3.11's .npy header parse
    could raise SystemError under concurrency before the header lock)."""
    from concurrent.futures import ThreadPoolExecutor

    tiles = [encode_tile(np.ascontiguousarray(photo[y : y + 24, :40]), "zstd") for y in range(0, 96, 4)]
    with ThreadPoolExecutor(8) as pool:
        decoded = list(pool.map(decode_tile, tiles * 40))
    for index, tile in enumerate(decoded):
        assert np.array_equal(tile, photo[(index % len(tiles)) * 4 :][:24, :40])
