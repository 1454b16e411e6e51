"""Fixtures for the clean tests: real product photos, and the hashes of all of them computed once."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.clean import NormalizedImage, color_signature, image_id, normalize, phash

# An apparel photo (model on white, 1274x1580) and a gear photo (object on white, 1000x1000).
APPAREL = "mh01-black_main.jpg"
GEAR = "luma-foam-roller.jpg"


@dataclass(frozen=True)
class HashedPhoto:
    file: str
    product_name: str
    width: int
    height: int
    phash: int
    image_id: str
    color_signature: bytes
    sku: str


@pytest.fixture(scope="session")
def catalog(product_photos: Path) -> dict[str, dict[str, str]]:
    with open(product_photos / "catalog.csv", newline="") as handle:
        rows = {row["file"]: row for row in csv.DictReader(handle)}
    assert len(rows) >= 400, f"expected the 476 product photos listed in {product_photos}/catalog.csv"
    return rows


@pytest.fixture(scope="session")
def apparel_bytes(product_photos: Path) -> bytes:
    return (product_photos / APPAREL).read_bytes()


@pytest.fixture(scope="session")
def gear_bytes(product_photos: Path) -> bytes:
    return (product_photos / GEAR).read_bytes()


@pytest.fixture(scope="session")
def apparel(apparel_bytes: bytes) -> NormalizedImage:
    result = normalize(apparel_bytes)
    assert isinstance(result, NormalizedImage), result
    return result


@pytest.fixture(scope="session")
def hashed_photos(product_photos: Path, catalog: dict[str, dict[str, str]]) -> list[HashedPhoto]:
    """Every real photo through normalize and hashing, as ingest does it (about 12 s on 2 busy cores)."""
    hashed = []
    for name in sorted(catalog):
        result = normalize((product_photos / name).read_bytes())
        assert isinstance(result, NormalizedImage), (name, result)
        hashed.append(
            HashedPhoto(
                name,
                catalog[name]["product_name"],
                result.width,
                result.height,
                phash(result.pixels),
                image_id(result.pixels),
                color_signature(result.pixels),
                catalog[name]["sku"],
            )
        )
    return hashed


def encode(image: Image.Image | np.ndarray, fmt: str, **params: object) -> bytes:
    """Encode a Pillow image or an HxWx3 array with Pillow."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def reencoded_smaller(pixels: np.ndarray, scale: float = 0.8, quality: int = 70) -> bytes:
    """The near-duplicate copy of the brief: resized by `scale` and saved as JPEG at `quality`."""
    image = Image.fromarray(pixels)
    size = (round(image.width * scale), round(image.height * scale))
    return encode(image.resize(size, Image.Resampling.BICUBIC), "JPEG", quality=quality)


def hue_rotated(pixels: np.ndarray, shift: int = 85) -> np.ndarray:
    """The picture recoloured: hue turned by shift / 256 of a turn (85 = 120 degrees), as an edit would."""
    hsv = np.asarray(Image.fromarray(pixels).convert("HSV")).copy()
    hsv[..., 0] = (hsv[..., 0].astype(np.int64) + shift) % 256
    return np.asarray(Image.fromarray(hsv, "HSV").convert("RGB"))
