"""hashing: content ids, pHash and colour signatures, their near-duplicate power on the real product photos,
and the Hamming-radius pair search."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageOps

from pipeline.clean import (
    COLOR_SIGNATURE_BYTES,
    CleanConfig,
    NormalizedImage,
    color_distance,
    color_signature,
    hamming,
    image_id,
    normalize,
    phash,
)
from pipeline.clean.hashing import color_distances, pairs_within_radius, signature_rows
from tests.pipeline.clean.conftest import HashedPhoto, encode, hue_rotated, reencoded_smaller

RADIUS = CleanConfig().phash_radius
COLOR_MAX = CleanConfig().color_distance_max


def normalized(data: bytes) -> NormalizedImage:
    result = normalize(data)
    assert isinstance(result, NormalizedImage), result
    return result


def test_same_pixels_under_another_encoding_have_the_same_id(apparel: NormalizedImage) -> None:
    as_png = normalized(encode(apparel.pixels, "PNG"))
    assert as_png.stored_format == "png" and as_png.stored_bytes != apparel.stored_bytes
    assert image_id(as_png.pixels) == image_id(apparel.pixels)
    identifier = image_id(apparel.pixels)
    assert len(identifier) == 64 and int(identifier, 16) >= 0


def test_one_changed_pixel_or_another_shape_changes_the_id(apparel: NormalizedImage) -> None:
    changed = apparel.pixels.copy()
    changed[10, 10, 0] ^= 1
    assert image_id(changed) != image_id(apparel.pixels)
    flat = np.zeros((4, 6, 3), dtype=np.uint8)
    assert image_id(flat) != image_id(flat.reshape(6, 4, 3))


def test_id_does_not_depend_on_memory_layout(apparel: NormalizedImage) -> None:
    strided = np.asfortranarray(apparel.pixels)
    assert image_id(strided) == image_id(apparel.pixels)
    assert phash(strided) == phash(apparel.pixels)
    assert color_signature(strided) == color_signature(apparel.pixels)


def test_hashes_from_the_decoded_image_equal_hashes_from_pixels(apparel: NormalizedImage) -> None:
    assert apparel.image is not None
    assert phash(apparel.pixels, apparel.image) == phash(apparel.pixels)
    assert color_signature(apparel.pixels, apparel.image) == color_signature(apparel.pixels)
    other_size = apparel.image.resize((apparel.width // 2, apparel.height // 2))
    for wrong in (other_size, apparel.image.convert("L"), apparel.pixels):
        with pytest.raises(ValueError, match="RGB Pillow image"):
            phash(apparel.pixels, wrong)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="RGB Pillow image"):
            color_signature(apparel.pixels, wrong)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "bad",
    [np.zeros((4, 4), np.uint8), np.zeros((4, 4, 3), np.float32), np.zeros((0, 4, 3), np.uint8), [1, 2]],
)
def test_bad_pixels_raise_value_error(bad: object) -> None:
    with pytest.raises(ValueError, match="pixels"):
        image_id(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="pixels"):
        phash(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="pixels"):
        color_signature(bad)  # type: ignore[arg-type]


def test_phash_is_a_stable_64_bit_value(apparel: NormalizedImage) -> None:
    value = phash(apparel.pixels)
    assert 0 <= value < 2**64 and value == phash(apparel.pixels.copy())
    # A mirrored picture is a different picture to pHash.
    mirrored = np.ascontiguousarray(apparel.pixels[:, ::-1])
    assert hamming(value, phash(mirrored)) > 3 * RADIUS


def test_hamming_counts_differing_bits() -> None:
    assert hamming(0, 0) == 0
    assert hamming(0, 2**64 - 1) == 64
    assert hamming(0b1011, 0b0001) == 2


def test_reencoded_and_resized_copies_are_near_duplicates(
    product_photos, hashed_photos: list[HashedPhoto]
) -> None:
    hamming_distances, color_distances_seen = [], []
    for photo in hashed_photos[::20]:  # 24 photos across all categories
        original = normalized((product_photos / photo.file).read_bytes())
        copy = normalized(reencoded_smaller(original.pixels, scale=0.8, quality=70))
        assert image_id(copy.pixels) != image_id(original.pixels)
        hamming_distances.append(hamming(photo.phash, phash(copy.pixels)))
        color_distances_seen.append(color_distance(photo.color_signature, color_signature(copy.pixels)))
    print(
        f"\nJPEG q70 + 0.8x copies of {len(hamming_distances)} real photos: pHash distances "
        f"{sorted(hamming_distances)}, colour distances up to {max(color_distances_seen):.2f}"
    )
    assert max(hamming_distances) <= RADIUS
    # Measured on all 476: 0.4..2.1 Delta E (median 1.3), so the limit of 3.0 leaves room.
    assert max(color_distances_seen) <= COLOR_MAX - 0.5


def test_edited_copies_fall_outside_the_radius(apparel: NormalizedImage) -> None:
    """Real edits are new images: inverting or cropping away a third moves the hash far."""
    inverted = np.asarray(ImageOps.invert(Image.fromarray(apparel.pixels)))
    cropped = np.ascontiguousarray(apparel.pixels[:, : apparel.width * 2 // 3])
    assert hamming(phash(apparel.pixels), phash(inverted)) > RADIUS
    assert hamming(phash(apparel.pixels), phash(cropped)) > RADIUS


def test_false_positive_rate_on_distinct_real_products(hashed_photos: list[HashedPhoto]) -> None:
    """Pairs of photos of different products (by product name) within the radius: by pHash alone, and
    with the colour test too."""
    hashes = np.array([photo.phash for photo in hashed_photos], dtype=np.uint64)
    rows, _ = signature_rows([photo.color_signature for photo in hashed_photos])
    names = np.array([photo.product_name for photo in hashed_photos])
    distance = np.bitwise_count(hashes[:, None] ^ hashes[None, :])
    upper = np.triu(np.ones(distance.shape, dtype=bool), k=1)
    distinct = upper & (names[:, None] != names[None, :])
    report = []
    for radius in (0, 2, RADIUS, 6, 8, 10):
        close = distinct & (distance <= radius)
        first, second = np.nonzero(close)
        colour = color_distances(rows[first], rows[second])
        both = int((colour <= COLOR_MAX).sum())
        report.append(
            f"r={radius}: {int(close.sum())} pairs by pHash, {both} with colour"
            + (f" (closest colour {colour.min():.1f})" if colour.size else "")
        )
        # With the colour test no pair of different products is a near duplicate up to radius 10
        # (the closest measure 17 Delta E, the limit is 3).
        assert both == 0, report[-1]
    print(
        f"\n{len(hashed_photos)} photos, {int(distinct.sum())} distinct-product pairs: " + "; ".join(report)
    )
    false_pairs = int((distinct & (distance <= RADIUS)).sum())
    # pHash alone (colour unknown, e.g. against a schema v1 prior index): measured 3 pairs at radius 4
    # (20 at 6, models in the same pose on white), 0.003 %.
    assert false_pairs <= 3


def test_colour_signature_is_small_fixed_and_readable(apparel: NormalizedImage) -> None:
    signature = color_signature(apparel.pixels)
    assert isinstance(signature, bytes) and len(signature) == COLOR_SIGNATURE_BYTES == 192
    assert signature == color_signature(apparel.pixels.copy())
    white = color_signature(np.full((300, 200, 3), 255, np.uint8))
    assert white == bytes([255, 128, 128]) * 64  # L* 100 -> 255, a* = b* = 0 -> 128
    black = color_signature(np.zeros((3, 5, 3), np.uint8))  # smaller than the grid still works
    assert black == bytes([0, 128, 128]) * 64
    pure_red = color_signature(np.full((64, 64, 3), (255, 0, 0), np.uint8))
    assert pure_red[:3] == bytes([136, 208, 195])  # CIELAB (53.2, 80.1, 67.2)
    assert color_distance(signature, signature) == 0.0
    assert color_distance(white, black) == pytest.approx(100.0)  # lightness only: L* 100 vs 0


def test_colour_distance_is_symmetric_and_sees_one_changed_cell(apparel: NormalizedImage) -> None:
    """One cell of 64 recoloured is enough: the distance is that of the most different cell."""
    pixels = apparel.pixels.copy()
    height, width, _ = pixels.shape
    pixels[height // 2 : height // 2 + height // 8, width // 2 : width // 2 + width // 8] = (200, 40, 40)
    edited, original = color_signature(pixels), color_signature(apparel.pixels)
    assert color_distance(edited, original) == color_distance(original, edited) > 5 * COLOR_MAX
    differing_cells = np.frombuffer(edited, np.uint8).reshape(64, 3) != np.frombuffer(
        original, np.uint8
    ).reshape(64, 3)
    assert 1 <= differing_cells.any(axis=1).sum() <= 4  # the patch straddles at most four cells


def test_recoloured_copy_is_far_in_colour_but_not_in_phash(product_photos) -> None:
    """A hue-rotated copy hashes alike (pHash is blind to it); only the colour signature tells it apart."""
    original = normalized((product_photos / "wj08-orange_main.jpg").read_bytes())
    recoloured = hue_rotated(original.pixels, shift=85)
    assert hamming(phash(original.pixels), phash(recoloured)) <= RADIUS  # measured 0
    assert color_distance(color_signature(original.pixels), color_signature(recoloured)) > 10 * COLOR_MAX


def test_colour_variants_of_one_garment_are_far_apart(product_photos) -> None:
    """mp04 black and gray: pHashes 2 bits apart (a copy's distance), colours far apart (measured 23)."""
    black = normalized((product_photos / "mp04-black_main.jpg").read_bytes())
    gray = normalized((product_photos / "mp04-gray_main.jpg").read_bytes())
    assert hamming(phash(black.pixels), phash(gray.pixels)) <= RADIUS
    assert color_distance(color_signature(black.pixels), color_signature(gray.pixels)) > 5 * COLOR_MAX


@pytest.mark.parametrize(
    ("signatures", "message"),
    [([b"\x00" * 191], "192 bytes"), (["text"], "192 bytes"), ([b"\x00" * 193, None], "192 bytes")],
)
def test_bad_signatures_raise_value_error(signatures: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        signature_rows(signatures)
    with pytest.raises(ValueError, match="signature arrays"):
        color_distances(np.zeros((1, 192), np.uint8), np.zeros((2, 192), np.uint8))


def test_signature_rows_mark_unknown_colours() -> None:
    rows, known = signature_rows([bytes(range(192)), None])
    assert known.tolist() == [True, False]
    assert rows.shape == (2, 192) and rows[0].tolist() == list(range(192)) and not rows[1].any()


@pytest.mark.parametrize("radius", [0, 1, 2, 4, 6, 7, 10, 16])
def test_band_index_finds_exactly_the_brute_force_pairs(radius: int) -> None:
    rng = np.random.default_rng(radius)
    centres = rng.integers(0, 2**64, 60, dtype=np.uint64)
    values = []
    for centre in centres:  # clusters with members at every distance up to radius + 3
        for distance in range(radius + 4):
            bits = rng.choice(64, distance, replace=False)
            values.append(int(centre) ^ sum(1 << int(bit) for bit in bits))
    hashes = np.array(values, dtype=np.uint64)
    queries = hashes[::3]
    query_index, base_index, distance = pairs_within_radius(queries, hashes, radius)
    brute = np.bitwise_count(queries[:, None] ^ hashes[None, :])
    expected = set(zip(*np.nonzero(brute <= radius), strict=True))
    assert set(zip(query_index.tolist(), base_index.tolist(), strict=True)) == expected
    assert np.array_equal(distance, brute[query_index, base_index])
