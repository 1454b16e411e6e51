"""dedup: exact and near duplicates inside a partition and against earlier ones, at 10^5 scale."""

from __future__ import annotations

import random
import time

import numpy as np
import pytest

from pipeline.clean import (
    Candidate,
    CleanConfig,
    NormalizedImage,
    PriorHashes,
    image_id,
    measure,
    normalize,
    phash,
    resolve_duplicates,
)
from pipeline.clean.dedup import _pairs_within
from tests.pipeline.clean.conftest import HashedPhoto, reencoded_smaller

RADIUS = CleanConfig().phash_radius


def candidate(
    key: str, phash_value: int, size: int = 1000, quality: float = 1.0, ident: str = ""
) -> Candidate:
    return Candidate(key, ident or f"id-{key}", phash_value, size, size, quality)


def outcome(result) -> tuple[list[str], list[tuple[str, str, str, int]]]:
    keep = [c.key for c in result.keep]
    dups = [(d.candidate.key, d.duplicate_of, d.kind, d.distance) for d in result.duplicates]
    return keep, dups


def test_exact_duplicates_keep_one_and_point_at_it() -> None:
    same = [
        candidate("b", 7, ident="img"),
        candidate("a", 7, ident="img"),
        candidate("c", 0xFFFF_FFFF_0000_0000, ident="other"),
    ]
    result = resolve_duplicates(same, PriorHashes.empty(), RADIUS)
    assert outcome(result) == (["a", "c"], [("b", "img", "exact", 0)])


def test_best_representative_wins_by_resolution_then_quality() -> None:
    base = 0x0F0F_F0F0_1234_5678
    small_sharp = candidate("small", base, size=800, quality=900.0)
    large_soft = candidate("large", base ^ 0b111, size=1200, quality=10.0)
    same_size_sharper = candidate("sharper", base ^ 0b11000, size=1200, quality=50.0)
    result = resolve_duplicates([small_sharp, large_soft, same_size_sharper], PriorHashes.empty(), RADIUS)
    keep, dups = outcome(result)
    assert keep == ["sharper"]
    assert dups == [("large", "id-sharper", "near", 5), ("small", "id-sharper", "near", 2)]


def test_radius_is_inclusive() -> None:
    base = 2**40 + 12345
    at_radius = candidate("at", base ^ (2**RADIUS - 1), size=900)
    beyond = candidate("beyond", base ^ (2 ** (RADIUS + 1) - 1) << 20, size=900)
    result = resolve_duplicates([candidate("base", base), at_radius, beyond], PriorHashes.empty(), RADIUS)
    assert outcome(result) == (["base", "beyond"], [("at", "id-base", "near", RADIUS)])


def test_greedy_does_not_chain_through_a_duplicate() -> None:
    """C is near B but not near A; B is a duplicate of A, so C stays (it duplicates nothing kept)."""
    a = candidate("a", 0, size=1200)
    b = candidate("b", 0b1111, size=1100)
    c = candidate("c", 0b1111_1111, size=1000)
    result = resolve_duplicates([c, b, a], PriorHashes.empty(), RADIUS)
    assert outcome(result) == (["a", "c"], [("b", "id-a", "near", 4)])


def test_earlier_partitions_win_even_against_better_images() -> None:
    prior = PriorHashes.from_arrays(
        ["old-far", "old-near", "old-exact", "old-tie"], [0xFFFF_FFFF_FFFF_0000, 0b11, 99, 0b1100]
    )
    new = [
        candidate("exact", 12345, size=4000, ident="old-exact"),  # same pixels as an earlier image
        candidate("near", 0, size=4000),  # 2 bits from old-near and from old-tie: the earlier one wins
        candidate("fresh", 0x5555_5555_0000_0000, size=500),
    ]
    result = resolve_duplicates(new, prior, RADIUS)
    assert outcome(result) == (
        ["fresh"],
        [("exact", "old-exact", "exact", 0), ("near", "old-near", "near", 2)],
    )


def test_exact_copies_follow_their_representative_to_a_prior_match() -> None:
    prior = PriorHashes.from_arrays(["old"], [0])
    twins = [candidate("x", 1, ident="same"), candidate("y", 1, ident="same")]
    result = resolve_duplicates(twins, prior, RADIUS)
    assert outcome(result) == ([], [("x", "old", "near", 1), ("y", "old", "near", 1)])


def test_prior_accepts_parquet_style_int64_bit_patterns() -> None:
    top = 2**64 - 1  # stored as int64 -1 in the index
    prior = PriorHashes.from_arrays(np.array(["old"]), np.array([-1], dtype=np.int64))
    result = resolve_duplicates([candidate("new", top)], prior, RADIUS)
    assert outcome(result) == ([], [("new", "old", "near", 0)])
    merged = PriorHashes.empty().merged_with(prior)
    assert len(merged) == 1 and int(merged.phashes[0]) == top


def test_result_does_not_depend_on_input_order() -> None:
    rng = np.random.default_rng(3)
    centres = rng.integers(0, 2**64, 40, dtype=np.uint64)
    candidates = []
    for index in range(400):
        noise = int(rng.integers(0, 2**64, dtype=np.uint64)) & int(rng.integers(0, 2**64, dtype=np.uint64))
        noise &= int(rng.integers(0, 2**64, dtype=np.uint64)) & int(rng.integers(0, 2**64, dtype=np.uint64))
        value = int(centres[index % 40]) ^ (noise & int(rng.integers(0, 2**64, dtype=np.uint64)))
        size = int(rng.choice([800, 1000, 1200]))
        candidates.append(candidate(f"k{index:03d}", value, size=size, quality=float(rng.integers(0, 3))))
    candidates += [candidate("twin-1", 5, ident="twin"), candidate("twin-2", 5, ident="twin")]
    prior = PriorHashes.from_arrays(["p0", "p1"], [int(centres[0]), int(centres[1]) ^ 1])
    expected = outcome(resolve_duplicates(candidates, prior, RADIUS))
    assert 0 < len(expected[1]) < len(candidates)
    for seed in range(3):
        shuffled = candidates[:]
        random.Random(seed).shuffle(shuffled)
        assert outcome(resolve_duplicates(shuffled, prior, RADIUS)) == expected


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
    query_index, base_index, distance = _pairs_within(queries, hashes, radius)
    brute = np.bitwise_count(queries[:, None] ^ hashes[None, :])
    expected = set(zip(*np.nonzero(brute <= radius), strict=True))
    assert set(zip(query_index.tolist(), base_index.tolist(), strict=True)) == expected
    assert np.array_equal(distance, brute[query_index, base_index])


def test_hundred_thousand_candidates_resolve_in_seconds() -> None:
    rng = np.random.default_rng(7)
    count, planted = 100_000, 1_000
    hashes = rng.integers(0, 2**64, count, dtype=np.uint64)
    sources = rng.choice(count, planted, replace=False)
    copies = []
    for source in sources:
        bits = rng.choice(64, int(rng.integers(0, RADIUS + 1)), replace=False)
        copies.append(int(hashes[source]) ^ sum(1 << int(bit) for bit in bits))
    candidates = [candidate(f"o{i}", int(h), size=1000) for i, h in enumerate(hashes)]
    candidates += [candidate(f"c{i}", h, size=800) for i, h in enumerate(copies)]
    started = time.process_time()
    result = resolve_duplicates(candidates, PriorHashes.empty(), RADIUS)
    seconds = time.process_time() - started
    print(f"\n{len(candidates)} candidates resolved in {seconds:.2f} s CPU")
    assert len(result.keep) == count
    assert {d.candidate.key for d in result.duplicates} == {f"c{i}" for i in range(planted)}
    assert all(
        d.duplicate_of == f"id-o{s}"
        for d, s in zip(
            sorted(result.duplicates, key=lambda d: int(d.candidate.key[1:])), sources, strict=True
        )
    )
    assert seconds < 15.0


def test_real_photos_with_reencoded_copies(product_photos, hashed_photos: list[HashedPhoto]) -> None:
    """The 476 real photos plus JPEG q70 0.8x copies of ten of them, as one partition."""
    originals = [Candidate(p.file, p.image_id, p.phash, p.width, p.height, 0.0) for p in hashed_photos]
    by_file = {p.file: p for p in hashed_photos}
    hashes = np.array([p.phash for p in hashed_photos], dtype=np.uint64)
    isolated = [
        p for p in hashed_photos if (np.bitwise_count(hashes ^ np.uint64(p.phash)) <= RADIUS).sum() == 1
    ][::30][:10]
    copies = []
    for photo in isolated:
        original = normalize((product_photos / photo.file).read_bytes())
        assert isinstance(original, NormalizedImage)
        copy = normalize(reencoded_smaller(original.pixels))
        assert isinstance(copy, NormalizedImage)
        sharpness = measure(copy.pixels, copy.stored_format, copy.stored_bytes).sharpness
        pixels = copy.pixels
        copies.append(
            Candidate(
                f"copy-of-{photo.file}", image_id(pixels), phash(pixels), copy.width, copy.height, sharpness
            )
        )
    first = isolated[0]  # kept for sure: nothing else is within the radius but its smaller copy
    twin = Candidate("same-image-second-url", first.image_id, first.phash, first.width, first.height, 0.0)

    result = resolve_duplicates(originals + copies + [twin], PriorHashes.empty(), RADIUS)
    found = {d.candidate.key: d for d in result.duplicates}
    for photo in isolated:
        duplicate = found[f"copy-of-{photo.file}"]
        assert (duplicate.duplicate_of, duplicate.kind) == (photo.image_id, "near")
    assert found["same-image-second-url"][1:] == (first.image_id, "exact", 0)
    assert len(result.keep) + len(result.duplicates) == len(originals) + len(copies) + 1

    names = {p.image_id: p.product_name for p in hashed_photos}
    among_originals = [d for d in result.duplicates if d.candidate.key in by_file]
    other_product = [
        d for d in among_originals if names[d.duplicate_of] != by_file[d.candidate.key].product_name
    ]
    print(
        f"\nradius {RADIUS} on the 476 real photos: {len(among_originals)} marked near duplicates "
        f"({len(other_product)} of a different product)"
    )


@pytest.mark.parametrize(
    ("candidates", "radius", "message"),
    [
        ([candidate("a", 1), candidate("a", 2)], 6, "unique"),
        ([candidate("a", 2**64)], 6, "64-bit"),
        ([candidate("a", -1)], 6, "64-bit"),
        ([candidate("a", 1, quality=float("nan"))], 6, "NaN"),
        ([], 33, "radius"),
        ([], -1, "radius"),
    ],
)
def test_bad_arguments_raise_value_error(candidates: list[Candidate], radius: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        resolve_duplicates(candidates, PriorHashes.empty(), radius)


def test_prior_arrays_must_align() -> None:
    with pytest.raises(ValueError, match="length"):
        PriorHashes.from_arrays(["a", "b"], [1])
