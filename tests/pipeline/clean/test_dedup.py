"""dedup: exact and near (pHash + colour) duplicates inside a partition and against earlier ones, at 10^5
scale, and on the real product photos."""

from __future__ import annotations

import math
import random
import time

import numpy as np
import pytest

from pipeline.clean import (
    Candidate,
    CleanConfig,
    NormalizedImage,
    PriorHashes,
    color_signature,
    image_id,
    measure,
    normalize,
    phash,
    resolve_duplicates,
)
from tests.pipeline.clean.conftest import HashedPhoto, hue_rotated, reencoded_smaller

RADIUS = CleanConfig().phash_radius
COLOR_MAX = CleanConfig().color_distance_max
# Synthetic colour signatures, all 64 cells alike (L* byte, a* = b* = 0): BLACK_COPY is 0.8 Delta E from
# BLACK (within the limit), GRAY 6.3 (beyond it).
BLACK, BLACK_COPY, GRAY = (bytes([lightness, 128, 128]) * 64 for lightness in (66, 68, 82))


def candidate(
    key: str,
    phash_value: int,
    size: int = 1000,
    quality: float = 1.0,
    ident: str = "",
    colour: bytes | None = None,
) -> Candidate:
    return Candidate(key, ident or f"id-{key}", phash_value, size, size, quality, colour)


def resolve(candidates, prior=None, radius: int = RADIUS, color_max: float = COLOR_MAX):
    return resolve_duplicates(candidates, prior or PriorHashes.empty(), radius, color_max)


def outcome(result) -> tuple[list[str], list[tuple[str, str, str, int]]]:
    keep = [c.key for c in result.keep]
    dups = [(d.candidate.key, d.duplicate_of, d.kind, d.distance) for d in result.duplicates]
    return keep, dups


def test_exact_duplicates_keep_one_and_point_at_it() -> None:
    same = [
        candidate("b", 7, ident="img", colour=BLACK),
        candidate("a", 7, ident="img", colour=BLACK),
        candidate("c", 0xFFFF_FFFF_0000_0000, ident="other"),
    ]
    result = resolve(same)
    assert outcome(result) == (["a", "c"], [("b", "img", "exact", 0)])
    assert result.duplicates[0].color_distance == 0.0


def test_best_representative_wins_by_resolution_then_quality() -> None:
    base = 0x0F0F_F0F0_1234_5678
    small_sharp = candidate("small", base, size=800, quality=900.0)
    large_soft = candidate("large", base ^ 0b11, size=1200, quality=10.0)
    same_size_sharper = candidate("sharper", base ^ 0b1100, size=1200, quality=50.0)
    result = resolve([small_sharp, large_soft, same_size_sharper])
    keep, dups = outcome(result)
    assert keep == ["sharper"]
    assert dups == [("large", "id-sharper", "near", 4), ("small", "id-sharper", "near", 2)]


def test_radius_is_inclusive() -> None:
    base = 2**40 + 12345
    at_radius = candidate("at", base ^ (2**RADIUS - 1), size=900)
    beyond = candidate("beyond", base ^ (2 ** (RADIUS + 1) - 1) << 20, size=900)
    result = resolve([candidate("base", base), at_radius, beyond])
    assert outcome(result) == (["base", "beyond"], [("at", "id-base", "near", RADIUS)])


def test_greedy_does_not_chain_through_a_duplicate() -> None:
    """C is near B but not near A; B is a duplicate of A, so C stays (it duplicates nothing kept)."""
    a = candidate("a", 0, size=1200)
    b = candidate("b", 0b1111, size=1100)
    c = candidate("c", 0b1111_1111, size=1000)
    result = resolve([c, b, a])
    assert outcome(result) == (["a", "c"], [("b", "id-a", "near", 4)])


def test_same_phash_different_colour_is_kept() -> None:
    """A black and a gray garment in one pose share a pHash; only a copy of the same colour is a duplicate."""
    black = candidate("black", 42, size=1200, colour=BLACK)
    gray = candidate("gray", 42, size=1100, colour=GRAY)
    black_copy = candidate("black-copy", 42 ^ 0b11, size=900, colour=BLACK_COPY)
    gray_copy = candidate("gray-copy", 42, size=800, colour=GRAY)  # same pHash as both kept images
    result = resolve([gray_copy, black_copy, gray, black])
    assert outcome(result) == (
        ["black", "gray"],
        [("black-copy", "id-black", "near", 2), ("gray-copy", "id-gray", "near", 0)],
    )
    black_copy_dup, gray_copy_dup = result.duplicates
    assert black_copy_dup.color_distance == pytest.approx(0.784, abs=0.001)  # 2 L* steps of 100/255
    assert gray_copy_dup.color_distance == 0.0


def test_colour_limit_separates_and_infinity_compares_phash_only() -> None:
    images = [candidate("black", 5, size=1200, colour=BLACK), candidate("gray", 5, size=900, colour=GRAY)]
    apart = resolve(images)
    assert outcome(apart) == (["black", "gray"], [])
    gray_distance = 16 * 100 / 255  # 16 L* bytes apart, no chroma
    at_limit = resolve(images, color_max=gray_distance + 1e-9)
    assert outcome(at_limit) == (["black"], [("gray", "id-black", "near", 0)])
    assert at_limit.duplicates[0].color_distance == pytest.approx(gray_distance)
    assert outcome(resolve(images, color_max=math.inf)) == outcome(at_limit)


def test_unknown_colour_falls_back_to_phash() -> None:
    """A pair with a signature missing on either side is compared by pHash alone."""
    known = candidate("known", 9, size=1200, colour=GRAY)
    unknown = candidate("unknown", 9 ^ 0b1, size=1100)
    result = resolve([known, unknown, candidate("black", 9 ^ 0b10, size=900, colour=BLACK)])
    assert outcome(result) == (["black", "known"], [("unknown", "id-known", "near", 1)])
    assert result.duplicates[0].color_distance is None

    kept_unknown = candidate("kept-unknown", 9, size=1300)
    result = resolve([kept_unknown, candidate("black", 9 ^ 0b10, size=900, colour=BLACK)])
    assert outcome(result) == (["kept-unknown"], [("black", "id-kept-unknown", "near", 1)])
    assert result.duplicates[0].color_distance is None


def test_earlier_partitions_win_even_against_better_images() -> None:
    prior = PriorHashes.from_arrays(
        ["old-far", "old-near", "old-exact", "old-tie"], [0xFFFF_FFFF_FFFF_0000, 0b11, 99, 0b1100]
    )
    new = [
        candidate("exact", 12345, size=4000, ident="old-exact"),  # same pixels as an earlier image
        candidate("near", 0, size=4000),  # 2 bits from old-near and from old-tie: the earlier one wins
        candidate("fresh", 0x5555_5555_0000_0000, size=500),
    ]
    result = resolve(new, prior)
    assert outcome(result) == (
        ["fresh"],
        [("exact", "old-exact", "exact", 0), ("near", "old-near", "near", 2)],
    )


def test_prior_colours_decide_which_earlier_image_is_matched() -> None:
    """Earlier black and gray images share a pHash; a new gray copy duplicates the gray one, a new red
    one duplicates neither, and a prior without signatures (a schema v1 index) matches by pHash alone."""
    red = bytes([140, 200, 180]) * 64
    prior = PriorHashes.from_arrays(["old-black", "old-gray"], [77, 77], [BLACK, GRAY])
    new = [
        candidate("gray-copy", 77 ^ 0b1, colour=GRAY),
        candidate("red", 77, colour=red),
        candidate("unknown", 77 ^ 0b100),
    ]
    result = resolve(new, prior)
    assert outcome(result) == (
        ["red"],
        [("gray-copy", "old-gray", "near", 1), ("unknown", "old-black", "near", 1)],
    )
    assert [d.color_distance for d in result.duplicates] == [0.0, None]

    v1_prior = PriorHashes.from_arrays(["old-v1"], [77])  # colour unknown
    assert not v1_prior.has_color.any()
    assert outcome(resolve([candidate("red", 77, colour=red)], v1_prior)) == (
        [],
        [("red", "old-v1", "near", 0)],
    )
    mixed = prior.merged_with(v1_prior)
    assert mixed.has_color.tolist() == [True, True, False] and mixed.color_signatures.shape == (3, 192)


def test_exact_copies_follow_their_representative_to_a_prior_match() -> None:
    prior = PriorHashes.from_arrays(["old"], [0])
    twins = [candidate("x", 1, ident="same"), candidate("y", 1, ident="same")]
    result = resolve(twins, prior)
    assert outcome(result) == ([], [("x", "old", "near", 1), ("y", "old", "near", 1)])


def test_prior_accepts_parquet_style_int64_bit_patterns() -> None:
    top = 2**64 - 1  # stored as int64 -1 in the index
    prior = PriorHashes.from_arrays(np.array(["old"]), np.array([-1], dtype=np.int64))
    result = resolve([candidate("new", top)], prior)
    assert outcome(result) == ([], [("new", "old", "near", 0)])
    merged = PriorHashes.empty().merged_with(prior)
    assert len(merged) == 1 and int(merged.phashes[0]) == top


def test_result_does_not_depend_on_input_order() -> None:
    rng = np.random.default_rng(3)
    centres = rng.integers(0, 2**64, 40, dtype=np.uint64)
    colours = [BLACK, BLACK_COPY, GRAY, None]
    candidates = []
    for index in range(400):
        noise = int(rng.integers(0, 2**64, dtype=np.uint64)) & int(rng.integers(0, 2**64, dtype=np.uint64))
        noise &= int(rng.integers(0, 2**64, dtype=np.uint64)) & int(rng.integers(0, 2**64, dtype=np.uint64))
        value = int(centres[index % 40]) ^ (noise & int(rng.integers(0, 2**64, dtype=np.uint64)))
        size = int(rng.choice([800, 1000, 1200]))
        colour = colours[int(rng.integers(0, len(colours)))]
        candidates.append(
            candidate(f"k{index:03d}", value, size=size, quality=float(rng.integers(0, 3)), colour=colour)
        )
    candidates += [candidate("twin-1", 5, ident="twin"), candidate("twin-2", 5, ident="twin")]
    prior = PriorHashes.from_arrays(["p0", "p1"], [int(centres[0]), int(centres[1]) ^ 1], [GRAY, None])
    expected = outcome(resolve(candidates, prior))
    assert 0 < len(expected[1]) < len(candidates)
    for seed in range(3):
        shuffled = candidates[:]
        random.Random(seed).shuffle(shuffled)
        assert outcome(resolve(shuffled, prior)) == expected


def test_hundred_thousand_candidates_resolve_in_seconds() -> None:
    rng = np.random.default_rng(7)
    count, planted = 100_000, 1_000
    hashes = rng.integers(0, 2**64, count, dtype=np.uint64)
    signatures = [bytes(row) for row in rng.integers(0, 256, (count, 192), dtype=np.uint8)]
    sources = rng.choice(count, planted, replace=False)
    copies = []
    for source in sources:
        bits = rng.choice(64, int(rng.integers(0, RADIUS + 1)), replace=False)
        copies.append(int(hashes[source]) ^ sum(1 << int(bit) for bit in bits))
    candidates = [candidate(f"o{i}", int(h), size=1000, colour=signatures[i]) for i, h in enumerate(hashes)]
    candidates += [
        candidate(f"c{i}", h, size=800, colour=signatures[s])
        for i, (h, s) in enumerate(zip(copies, sources, strict=True))
    ]
    # Recoloured copies of other originals: the same pHash, a signature of a random other image.
    candidates += [
        candidate(f"r{i}", int(hashes[s]), size=800, colour=signatures[(s + 1) % count])
        for i, s in enumerate(sources)
    ]
    started = time.process_time()
    result = resolve(candidates)
    seconds = time.process_time() - started
    print(f"\n{len(candidates)} candidates resolved in {seconds:.2f} s CPU")
    assert len(result.keep) == count + planted  # the originals and every recoloured copy
    assert {d.candidate.key for d in result.duplicates} == {f"c{i}" for i in range(planted)}
    assert all(
        d.duplicate_of == f"id-o{s}"
        for d, s in zip(
            sorted(result.duplicates, key=lambda d: int(d.candidate.key[1:])), sources, strict=True
        )
    )
    assert seconds < 15.0


def test_real_photos_with_reencoded_and_recoloured_copies(
    product_photos, hashed_photos: list[HashedPhoto]
) -> None:
    """The 476 real photos plus, for ten of them, a JPEG q70 0.8x copy (a near duplicate) and a
    hue-rotated copy (a new image), as one partition; then the photos alone, before and after colour."""
    originals = [
        Candidate(p.file, p.image_id, p.phash, p.width, p.height, 0.0, p.color_signature)
        for p in hashed_photos
    ]
    by_file = {p.file: p for p in hashed_photos}
    hashes = np.array([p.phash for p in hashed_photos], dtype=np.uint64)
    isolated = [
        p for p in hashed_photos if (np.bitwise_count(hashes ^ np.uint64(p.phash)) <= RADIUS).sum() == 1
    ][::30][:10]
    copies, recoloured = [], []
    for photo in isolated:
        original = normalize((product_photos / photo.file).read_bytes())
        assert isinstance(original, NormalizedImage)
        copy = normalize(reencoded_smaller(original.pixels))
        assert isinstance(copy, NormalizedImage)
        sharpness = measure(copy.pixels, copy.stored_format, copy.stored_bytes).sharpness
        pixels = copy.pixels
        copies.append(
            Candidate(
                f"copy-of-{photo.file}",
                image_id(pixels),
                phash(pixels),
                copy.width,
                copy.height,
                sharpness,
                color_signature(pixels),
            )
        )
        hue = hue_rotated(original.pixels)
        recoloured.append(
            Candidate(
                f"recoloured-{photo.file}",
                image_id(hue),
                phash(hue),
                original.width,
                original.height,
                0.0,
                color_signature(hue),
            )
        )
    first = isolated[0]  # kept for sure: nothing else is within the radius but its smaller copy
    twin = Candidate(
        "same-image-second-url",
        first.image_id,
        first.phash,
        first.width,
        first.height,
        0.0,
        first.color_signature,
    )

    result = resolve(originals + copies + recoloured + [twin])
    found = {d.candidate.key: d for d in result.duplicates}
    for photo in isolated:
        duplicate = found[f"copy-of-{photo.file}"]
        assert (duplicate.duplicate_of, duplicate.kind) == (photo.image_id, "near")
        assert duplicate.color_distance <= COLOR_MAX
        assert f"recoloured-{photo.file}" not in found  # a hue-rotated copy is a new image
    close_hues = sum(
        1 for r, p in zip(recoloured, isolated, strict=True) if (r.phash ^ p.phash).bit_count() <= RADIUS
    )
    assert close_hues >= 5  # most recoloured copies were pHash near duplicates: colour told them apart
    assert found["same-image-second-url"][1:] == (first.image_id, "exact", 0, 0.0)
    assert len(result.keep) + len(result.duplicates) == len(originals) + 2 * len(copies) + 1

    # The photos alone: the old default (radius 6, no colour) against the new defaults.
    names = {p.image_id: p.product_name for p in hashed_photos}
    files = {p.image_id: p.file for p in hashed_photos}

    def measured(radius: int, color_max: float) -> tuple[list, list, list]:
        marked = resolve(originals, radius=radius, color_max=color_max).duplicates
        same_product = [d for d in marked if names[d.duplicate_of] == by_file[d.candidate.key].product_name]
        other_product = [d for d in marked if names[d.duplicate_of] != by_file[d.candidate.key].product_name]
        return marked, same_product, other_product

    before = measured(6, math.inf)
    after = measured(RADIUS, COLOR_MAX)
    print(
        f"\n476 real photos marked near duplicates: before (radius 6, pHash only) {len(before[0])} "
        f"({len(before[1])} same product, {len(before[2])} of a different product); after (radius {RADIUS}, "
        f"colour <= {COLOR_MAX}) {len(after[0])} ({len(after[1])} same product, {len(after[2])} of a "
        f"different product): {sorted((d.candidate.key, files[d.duplicate_of]) for d in after[0])}"
    )
    # Measured before: 108 (92 colour variants of the same product, 16 of different products).
    assert len(before[0]) > 100 and len(before[2]) > 10
    # After: no different product, and only the two photographs that the catalog files under two colours
    # (black and blue of mp09 and mp12: 0.2 gray levels apart on average, so one picture each).
    assert after[2] == []
    assert {frozenset((d.candidate.key, files[d.duplicate_of])) for d in after[0]} == {
        frozenset(("mp09-black_main.jpg", "mp09-blue_main.jpg")),
        frozenset(("mp12-black_main.jpg", "mp12-blue_main.jpg")),
    }


def test_colour_variants_of_one_product_are_not_near_duplicates(hashed_photos: list[HashedPhoto]) -> None:
    """Every pair of `_main` photos of two colours of one sku within 6 pHash bits (the old radius, where
    they used to collapse) survives dedup even at that radius, except the two pairs that are one
    photograph (see above): the colour test alone tells them apart."""
    old_radius = 6
    by_sku: dict[str, list[HashedPhoto]] = {}
    for photo in hashed_photos:
        if photo.file.endswith("_main.jpg"):
            by_sku.setdefault(photo.sku, []).append(photo)
    same_photograph = {"mp09-blue_main.jpg", "mp12-blue_main.jpg"}
    pairs = [
        (a, b)
        for group in by_sku.values()
        for i, a in enumerate(group)
        for b in group[i + 1 :]
        if (a.phash ^ b.phash).bit_count() <= old_radius and not {a.file, b.file} & same_photograph
    ]
    assert len(pairs) >= 80  # measured 91 (74 of them within the new radius of 4)
    for a, b in pairs:
        two = [
            Candidate(p.file, p.image_id, p.phash, p.width, p.height, 0.0, p.color_signature) for p in (a, b)
        ]
        assert resolve(two, radius=old_radius).duplicates == [], (a.file, b.file)
        assert resolve(two).duplicates == [], (a.file, b.file)


@pytest.mark.parametrize(
    ("candidates", "radius", "color_max", "message"),
    [
        ([candidate("a", 1), candidate("a", 2)], 6, COLOR_MAX, "unique"),
        ([candidate("a", 2**64)], 6, COLOR_MAX, "64-bit"),
        ([candidate("a", -1)], 6, COLOR_MAX, "64-bit"),
        ([candidate("a", 1, quality=float("nan"))], 6, COLOR_MAX, "NaN"),
        ([candidate("a", 1, colour=b"\x00" * 48)], 6, COLOR_MAX, "color_signature has 48 bytes"),
        ([], 33, COLOR_MAX, "radius"),
        ([], -1, COLOR_MAX, "radius"),
        ([], 4, -1.0, "color_distance_max"),
        ([], 4, float("nan"), "color_distance_max"),
    ],
)
def test_bad_arguments_raise_value_error(
    candidates: list[Candidate], radius: int, color_max: float, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        resolve_duplicates(candidates, PriorHashes.empty(), radius, color_max)


def test_prior_arrays_must_align() -> None:
    with pytest.raises(ValueError, match="length"):
        PriorHashes.from_arrays(["a", "b"], [1])
    with pytest.raises(ValueError, match="length"):
        PriorHashes.from_arrays(["a"], [1], [BLACK, None])
    with pytest.raises(ValueError, match="192 bytes"):
        PriorHashes.from_arrays(["a"], [1], [b"short"])
