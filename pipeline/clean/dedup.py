"""Dedup: decide which images of a partition to keep and which are duplicates, and of what.

In: `Candidate`s of one partition (image id, 64-bit pHash, size, a quality value), `PriorHashes` of
every earlier committed partition, and a Hamming radius. Out: `DedupResult` with the kept candidates
and, for each other one, the image id it duplicates, the kind ("exact": same decoded pixels; "near":
pHashes within the radius) and the Hamming distance.

Rules: an image already committed earlier always wins (the new one is the duplicate). Inside the
partition, candidates are ranked best first (more pixels, then higher quality_rank_value, then image_id
and key as tie-breaks) and taken greedily: each one either duplicates the nearest better-ranked kept
image within the radius, or is kept. The result depends only on the set of candidates, never on their
order. Near pairs are found with multi-index hashing: the 64 bits are split into radius // 2 + 1
bands, so two hashes within the radius agree on some band to within one bit (pigeonhole); each band is
looked up in a sorted array with 1 + band-width probes, all in numpy, then the full distance is checked.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

_QUERY_CHUNK = 8192  # bounds the candidate-pair arrays of one lookup
_DENSE_BAND_BITS = 20  # bands this narrow are looked up in a table of 2**bits buckets (8 MiB at most)


@dataclass(frozen=True)
class Candidate:
    """One accepted image of the partition. `key` must be unique in the partition (e.g. the URL)."""

    key: str
    image_id: str
    phash: int
    width: int
    height: int
    quality_rank_value: float  # higher is better, e.g. QualityMetrics.sharpness


class Duplicate(NamedTuple):
    candidate: Candidate
    duplicate_of: str  # image_id of the kept image, in this partition or an earlier one
    kind: str  # "exact" or "near"
    distance: int  # Hamming distance of the pHashes (0 for exact duplicates)


@dataclass(frozen=True)
class DedupResult:
    keep: list[Candidate]  # sorted by key
    duplicates: list[Duplicate]  # sorted by candidate key


@dataclass(frozen=True)
class PriorHashes:
    """image_id and pHash of every image kept by earlier partitions, in commit order (earliest first)."""

    image_ids: np.ndarray  # bytes ids (dtype S), in commit order
    phashes: np.ndarray  # uint64, aligned with image_ids

    @classmethod
    def from_arrays(
        cls, image_ids: Sequence[str] | np.ndarray, phashes: Sequence[int] | np.ndarray
    ) -> PriorHashes:
        """Build from index columns; phashes may be uint64, or int64 holding the same 64 bits."""
        ids = np.asarray([str(i).encode("ascii") for i in image_ids], dtype=bytes)
        hashes = _as_uint64(phashes, "prior phashes")
        if ids.shape[0] != hashes.shape[0]:
            raise ValueError(
                f"prior image_ids ({ids.shape[0]}) and phashes ({hashes.shape[0]}) differ in length"
            )
        return cls(image_ids=ids, phashes=hashes)

    @classmethod
    def empty(cls) -> PriorHashes:
        return cls(image_ids=np.zeros(0, dtype="S64"), phashes=np.zeros(0, dtype=np.uint64))

    def merged_with(self, later: PriorHashes) -> PriorHashes:
        """These hashes followed by a later partition's (for example after committing it)."""
        return PriorHashes(
            image_ids=np.concatenate([self.image_ids, later.image_ids]),
            phashes=np.concatenate([self.phashes, later.phashes]),
        )

    def __len__(self) -> int:
        return int(self.phashes.shape[0])


def resolve_duplicates(candidates: Sequence[Candidate], prior: PriorHashes, radius: int) -> DedupResult:
    """Keep the best representative of each duplicate group; earlier partitions always win."""
    if not 0 <= radius <= 32:
        raise ValueError(f"radius={radius}: the pHash Hamming radius must be between 0 and 32 (default 6)")
    _check_candidates(candidates)
    ranked = sorted(candidates, key=_rank_key)
    # Exact groups: identical pixels share one fate, decided by their best-ranked member.
    representatives: dict[str, Candidate] = {}
    for candidate in ranked:
        representatives.setdefault(candidate.image_id, candidate)
    reps = list(representatives.values())  # still in rank order
    rep_hashes = np.array([rep.phash for rep in reps], dtype=np.uint64)
    fate: list[tuple[str, str, int] | None] = [None] * len(reps)  # (duplicate_of, kind, distance)

    rep_ids = np.array([rep.image_id.encode("ascii") for rep in reps], dtype=bytes)
    seen_before = (
        np.isin(rep_ids, prior.image_ids) if len(prior) and reps else np.zeros(len(reps), dtype=bool)
    )
    for position in np.flatnonzero(seen_before):
        fate[position] = (reps[position].image_id, "exact", 0)
    open_positions = np.flatnonzero(~seen_before)
    for position, outcome in _match_prior(rep_hashes[open_positions], prior, radius).items():
        fate[open_positions[position]] = outcome
    open_positions = np.array([p for p in open_positions if fate[p] is None], dtype=np.int64)
    for position, outcome in _greedy_within(rep_hashes[open_positions], radius).items():
        kept_position = open_positions[outcome[0]]
        fate[open_positions[position]] = (reps[kept_position].image_id, "near", outcome[1])

    fate_by_id = {rep.image_id: fate[position] for position, rep in enumerate(reps)}
    keep: list[Candidate] = []
    duplicates: list[Duplicate] = []
    for candidate in ranked:
        rep = representatives[candidate.image_id]
        outcome = fate_by_id[candidate.image_id]
        if outcome is None and candidate is rep:
            keep.append(candidate)
        elif outcome is None:
            duplicates.append(Duplicate(candidate, rep.image_id, "exact", 0))
        else:
            duplicates.append(Duplicate(candidate, *outcome))
    keep.sort(key=lambda c: c.key)
    duplicates.sort(key=lambda d: d.candidate.key)
    return DedupResult(keep=keep, duplicates=duplicates)


def _rank_key(candidate: Candidate) -> tuple[int, float, str, str]:
    area = candidate.width * candidate.height
    return (-area, -candidate.quality_rank_value, candidate.image_id, candidate.key)


def _check_candidates(candidates: Sequence[Candidate]) -> None:
    keys = {c.key for c in candidates}
    if len(keys) != len(candidates):
        raise ValueError("candidate keys must be unique within a partition: use the feed row's URL or row id")
    for c in candidates:
        if not 0 <= c.phash < 2**64:
            raise ValueError(f"candidate {c.key!r}: phash {c.phash} is not a 64-bit unsigned value")
        if math.isnan(c.quality_rank_value):
            raise ValueError(f"candidate {c.key!r}: quality_rank_value is NaN; pass 0.0 when it is unknown")


def _match_prior(hashes: np.ndarray, prior: PriorHashes, radius: int) -> dict[int, tuple[str, str, int]]:
    """Position in `hashes` -> the nearest prior image within the radius (the earliest on ties)."""
    if hashes.size == 0 or len(prior) == 0:
        return {}
    prior_values, first_index = np.unique(prior.phashes, return_index=True)
    query_index, prior_index, distance = _pairs_within(hashes, prior_values, radius)
    if query_index.size == 0:
        return {}
    order = np.lexsort((first_index[prior_index], distance, query_index))
    query_index, prior_index, distance = query_index[order], prior_index[order], distance[order]
    best = np.ones(query_index.size, dtype=bool)
    best[1:] = query_index[1:] != query_index[:-1]
    return {
        int(q): (prior.image_ids[first_index[p]].decode("ascii"), "near", int(d))
        for q, p, d in zip(query_index[best], prior_index[best], distance[best], strict=True)
    }


def _greedy_within(hashes: np.ndarray, radius: int) -> dict[int, tuple[int, int]]:
    """Rank-ordered greedy over `hashes` (best first): position -> (kept position, distance) for each
    duplicate of the nearest better-ranked kept hash within the radius; absent positions are kept."""
    if hashes.size == 0:
        return {}
    values, value_of = np.unique(hashes, return_inverse=True)
    query_index, base_index, distance = _pairs_within(values, values, radius)
    order = np.argsort(query_index, kind="stable")
    neighbours, neighbour_distance = base_index[order].tolist(), distance[order].tolist()
    starts = np.searchsorted(query_index[order], np.arange(values.size + 1)).tolist()
    kept_with_value: dict[int, int] = {}  # value index -> position of the best kept hash with that value
    duplicates: dict[int, tuple[int, int]] = {}
    for position, value in enumerate(value_of.tolist()):
        best: tuple[int, int] | None = None  # (distance, kept position): nearest, then best-ranked
        for j in range(starts[value], starts[value + 1]):
            kept = kept_with_value.get(neighbours[j])
            if kept is not None and (best is None or (neighbour_distance[j], kept) < best):
                best = (neighbour_distance[j], kept)
        if best is None:
            kept_with_value.setdefault(value, position)
        else:
            duplicates[position] = (best[1], best[0])
    return duplicates


def _pairs_within(
    queries: np.ndarray, base: np.ndarray, radius: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (query index, base index, distance) with Hamming distance <= radius (multi-index hashing)."""
    n_bands = radius // 2 + 1
    probe_radius = radius // n_bands  # 0 or 1 by the choice of n_bands
    widths = [64 // n_bands + (1 if band < 64 % n_bands else 0) for band in range(n_bands)]
    shifts = np.cumsum([0, *widths[:-1]])
    found_query, found_base, found_distance = [], [], []
    for shift, width in zip(shifts, widths, strict=True):
        mask = np.uint64((1 << width) - 1)
        base_keys = (base >> np.uint64(shift)) & mask
        order = np.argsort(base_keys, kind="stable")
        sorted_keys = base_keys[order]
        flips = [0] + ([1 << bit for bit in range(width)] if probe_radius else [])
        flips = np.array(flips, dtype=np.uint64)
        # Narrow bands get a dense bucket table (O(1) lookups); wide ones a binary search.
        bucket_start = None
        if width <= _DENSE_BAND_BITS:
            bucket_count = np.bincount(sorted_keys.astype(np.intp), minlength=1 << width)
            bucket_start = np.concatenate([[0], np.cumsum(bucket_count)[:-1]])
        for start in range(0, queries.size, _QUERY_CHUNK):
            chunk = queries[start : start + _QUERY_CHUNK]
            probes = (((chunk >> np.uint64(shift)) & mask)[:, None] ^ flips[None, :]).ravel()
            if bucket_start is not None:
                low = bucket_start[probes.astype(np.intp)]
                counts = bucket_count[probes.astype(np.intp)]
            else:
                low = np.searchsorted(sorted_keys, probes, side="left")
                counts = np.searchsorted(sorted_keys, probes, side="right") - low
            total = int(counts.sum())
            if total == 0:
                continue
            query_index = np.repeat(np.repeat(np.arange(start, start + chunk.size), flips.size), counts)
            offsets = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
            base_index = order[np.repeat(low, counts) + offsets]
            distance = np.bitwise_count(queries[query_index] ^ base[base_index]).astype(np.int64)
            close = distance <= radius
            found_query.append(query_index[close])
            found_base.append(base_index[close])
            found_distance.append(distance[close])
    if not found_query:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    query_index = np.concatenate(found_query)
    base_index = np.concatenate(found_base)
    distance = np.concatenate(found_distance)
    # The same pair can be found through several bands.
    _, unique = np.unique(query_index * np.int64(base.size) + base_index, return_index=True)
    return query_index[unique], base_index[unique], distance[unique]


def _as_uint64(values: Sequence[int] | np.ndarray, what: str) -> np.ndarray:
    """uint64 hashes from uint64, from int64 holding the same bits (Parquet), or from Python ints."""
    if isinstance(values, np.ndarray) and values.dtype == np.uint64:
        return values.ravel()
    if isinstance(values, np.ndarray) and values.dtype.kind == "i":
        return values.astype(np.int64).ravel().view(np.uint64)
    if isinstance(values, np.ndarray) and values.dtype.kind not in "uO":
        raise ValueError(f"{what}: expected integer hashes, got dtype {values.dtype}")
    # Never let numpy guess a dtype here: a list mixing ints above 2**63 with small ones becomes float64.
    ints = [int(value) for value in (values.ravel().tolist() if isinstance(values, np.ndarray) else values)]
    if any(not -(2**63) <= value < 2**64 for value in ints):
        raise ValueError(
            f"{what}: every value must be a 64-bit hash (0 <= h < 2**64, or its int64 bit pattern)"
        )
    return np.array([value & 0xFFFF_FFFF_FFFF_FFFF for value in ints], dtype=np.uint64)
