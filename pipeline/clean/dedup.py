"""Dedup: decide which images of a partition to keep and which are duplicates, and of what.

In: `Candidate`s of one partition (image id, 64-bit pHash, colour signature, size, a quality value),
`PriorHashes` of every earlier committed partition, a Hamming radius and a colour distance limit. Out:
`DedupResult` with the kept candidates and, for each other one, the image id it duplicates, the kind
("exact": same decoded pixels; "near": pHashes within the radius AND colour signatures within the
limit), the Hamming distance and the colour distance.

pHash ignores colour, so the colour gate is what keeps a black and a gray shirt in the same pose apart.
A signature that is unknown on either side (a candidate without one, or a prior image from a schema v1
index) means "colour unknown": that pair is judged by pHash alone, as before colour signatures existed.

Rules: an image already committed earlier always wins (the new one is the duplicate). Inside the
partition, candidates are ranked best first (more pixels, then higher quality_rank_value, then image_id
and key as tie-breaks) and taken greedily: each one either duplicates the nearest (by Hamming distance,
then rank) better-ranked kept image that passes both tests, or is kept. The result depends only on the
set of candidates, never on their order. Near pairs come from `hashing.pairs_within_radius`
(multi-index hashing, all in numpy); their colours are then compared, vectorized.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from pipeline.clean.hashing import (
    COLOR_SIGNATURE_BYTES,
    color_distances,
    pairs_within_radius,
    signature_rows,
)


@dataclass(frozen=True)
class Candidate:
    """One accepted image of the partition. `key` must be unique in the partition (e.g. the URL)."""

    key: str
    image_id: str
    phash: int
    width: int
    height: int
    quality_rank_value: float  # higher is better, e.g. QualityMetrics.sharpness
    color_signature: bytes | None = None  # hashing.color_signature; None = colour unknown (pHash only)


class Duplicate(NamedTuple):
    candidate: Candidate
    duplicate_of: str  # image_id of the kept image, in this partition or an earlier one
    kind: str  # "exact" or "near"
    distance: int  # Hamming distance of the pHashes (0 for exact duplicates)
    color_distance: float | None = None  # of the colour signatures; 0 when exact, None when unknown


@dataclass(frozen=True)
class DedupResult:
    keep: list[Candidate]  # sorted by key
    duplicates: list[Duplicate]  # sorted by candidate key


@dataclass(frozen=True)
class PriorHashes:
    """Hashes of every image kept by earlier partitions, in commit order (earliest first)."""

    image_ids: np.ndarray  # bytes ids (dtype S), in commit order
    phashes: np.ndarray  # uint64, aligned with image_ids
    color_signatures: np.ndarray  # (n, COLOR_SIGNATURE_BYTES) uint8; zeros where the colour is unknown
    has_color: np.ndarray  # bool, False where the colour is unknown (e.g. a schema v1 index)

    @classmethod
    def from_arrays(
        cls,
        image_ids: Sequence[str] | np.ndarray,
        phashes: Sequence[int] | np.ndarray,
        color_signatures: Sequence[bytes | None] | None = None,
    ) -> PriorHashes:
        """Build from index columns; phashes may be uint64, or int64 holding the same 64 bits;
        color_signatures None (or a None item) means the colour of those images is unknown."""
        ids = np.asarray([str(i).encode("ascii") for i in image_ids], dtype=bytes)
        hashes = _as_uint64(phashes, "prior phashes")
        signatures = [None] * hashes.shape[0] if color_signatures is None else list(color_signatures)
        if not ids.shape[0] == hashes.shape[0] == len(signatures):
            raise ValueError(
                f"prior image_ids ({ids.shape[0]}), phashes ({hashes.shape[0]}) and color_signatures "
                f"({len(signatures)}) differ in length"
            )
        rows, known = signature_rows(signatures)
        return cls(image_ids=ids, phashes=hashes, color_signatures=rows, has_color=known)

    @classmethod
    def empty(cls) -> PriorHashes:
        return cls.from_arrays([], [])

    def merged_with(self, later: PriorHashes) -> PriorHashes:
        """These hashes followed by a later partition's (for example after committing it)."""
        return PriorHashes(
            *(
                np.concatenate([mine, theirs])
                for mine, theirs in zip(self._columns(), later._columns(), strict=True)
            )
        )

    def _columns(self) -> tuple[np.ndarray, ...]:
        return (self.image_ids, self.phashes, self.color_signatures, self.has_color)

    def __len__(self) -> int:
        return int(self.phashes.shape[0])


Outcome = tuple[str, str, int, float | None]  # duplicate_of, kind, Hamming distance, colour distance


def resolve_duplicates(
    candidates: Sequence[Candidate], prior: PriorHashes, radius: int, color_distance_max: float
) -> DedupResult:
    """Keep the best representative of each duplicate group; earlier partitions always win."""
    if not 0 <= radius <= 32:
        raise ValueError(f"radius={radius}: the pHash Hamming radius must be between 0 and 32 (default 4)")
    if not color_distance_max >= 0:  # also rejects NaN; math.inf compares pHashes only
        raise ValueError(f"color_distance_max={color_distance_max}: must be >= 0 (math.inf = pHash only)")
    _check_candidates(candidates)
    ranked = sorted(candidates, key=_rank_key)
    # Exact groups: identical pixels share one fate, decided by their best-ranked member.
    representatives: dict[str, Candidate] = {}
    for candidate in ranked:
        representatives.setdefault(candidate.image_id, candidate)
    reps = list(representatives.values())  # still in rank order
    rep_hashes = np.array([rep.phash for rep in reps], dtype=np.uint64)
    rep_rows, rep_known = signature_rows([rep.color_signature for rep in reps])
    fate: list[Outcome | None] = [None] * len(reps)

    rep_ids = np.array([rep.image_id.encode("ascii") for rep in reps], dtype=bytes)
    seen_before = (
        np.isin(rep_ids, prior.image_ids) if len(prior) and reps else np.zeros(len(reps), dtype=bool)
    )
    for position in np.flatnonzero(seen_before):
        fate[position] = (reps[position].image_id, "exact", 0, 0.0)
    open_positions = np.flatnonzero(~seen_before)
    colors = (rep_rows[open_positions], rep_known[open_positions], color_distance_max)
    for position, outcome in _match_prior(rep_hashes[open_positions], *colors, prior, radius).items():
        fate[open_positions[position]] = outcome
    open_positions = np.array([p for p in open_positions if fate[p] is None], dtype=np.int64)
    colors = (rep_rows[open_positions], rep_known[open_positions], color_distance_max)
    for position, (kept, distance, color) in _greedy_within(
        rep_hashes[open_positions], *colors, radius
    ).items():
        fate[open_positions[position]] = (reps[open_positions[kept]].image_id, "near", distance, color)

    fate_by_id = {rep.image_id: fate[position] for position, rep in enumerate(reps)}
    keep: list[Candidate] = []
    duplicates: list[Duplicate] = []
    for candidate in ranked:
        rep = representatives[candidate.image_id]
        outcome = fate_by_id[candidate.image_id]
        if outcome is None and candidate is rep:
            keep.append(candidate)
        elif outcome is None:
            duplicates.append(Duplicate(candidate, rep.image_id, "exact", 0, 0.0))
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
        if c.color_signature is not None and len(c.color_signature) != COLOR_SIGNATURE_BYTES:
            raise ValueError(
                f"candidate {c.key!r}: color_signature has {len(c.color_signature)} bytes, expected "
                f"{COLOR_SIGNATURE_BYTES} (hashing.color_signature) or None when unknown"
            )


def _color_gate(
    a_rows: np.ndarray, a_known: np.ndarray, b_rows: np.ndarray, b_known: np.ndarray, limit: float
) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise: passes (within the limit, or colour unknown on a side) and the distance (NaN if unknown)."""
    both = a_known & b_known
    distance = np.full(both.shape, np.nan)
    if both.any():
        distance[both] = color_distances(a_rows[both], b_rows[both])
    return ~(distance > limit), distance


def _match_prior(
    hashes: np.ndarray, rows: np.ndarray, known: np.ndarray, limit: float, prior: PriorHashes, radius: int
) -> dict[int, Outcome]:
    """Position in `hashes` -> the nearest prior image passing both tests (the earliest on ties)."""
    if hashes.size == 0 or len(prior) == 0:
        return {}
    query_index, prior_index, distance = pairs_within_radius(hashes, prior.phashes, radius)
    prior_colors = (prior.color_signatures[prior_index], prior.has_color[prior_index])
    passes, color = _color_gate(rows[query_index], known[query_index], *prior_colors, limit)
    query_index, prior_index, distance, color = (
        a[passes] for a in (query_index, prior_index, distance, color)
    )
    if query_index.size == 0:
        return {}
    order = np.lexsort((prior_index, distance, query_index))  # prior_index is commit order
    query_index, prior_index, distance, color = (
        a[order] for a in (query_index, prior_index, distance, color)
    )
    best = np.ones(query_index.size, dtype=bool)
    best[1:] = query_index[1:] != query_index[:-1]
    return {
        int(q): (prior.image_ids[p].decode("ascii"), "near", int(d), None if math.isnan(c) else float(c))
        for q, p, d, c in zip(*(a[best] for a in (query_index, prior_index, distance, color)), strict=True)
    }


def _greedy_within(
    hashes: np.ndarray, rows: np.ndarray, known: np.ndarray, limit: float, radius: int
) -> dict[int, tuple[int, int, float | None]]:
    """Rank-ordered greedy over `hashes` (best first): position -> (kept position, distance, colour
    distance) for each duplicate of the nearest better-ranked kept image passing both tests; absent
    positions are kept."""
    if hashes.size == 0:
        return {}
    values, value_of = np.unique(hashes, return_inverse=True)
    query_index, base_index, distance = pairs_within_radius(values, values, radius)
    order = np.argsort(query_index, kind="stable")
    neighbours, neighbour_distance = base_index[order].tolist(), distance[order].tolist()
    starts = np.searchsorted(query_index[order], np.arange(values.size + 1)).tolist()
    kept_at_value: dict[int, list[int]] = {}  # value index -> kept positions with that pHash, rank order
    duplicates: dict[int, tuple[int, int, float | None]] = {}
    for position, value in enumerate(value_of.tolist()):
        best: tuple[int, int, float | None] | None = None  # (distance, kept position, colour distance)
        for j in range(starts[value], starts[value + 1]):
            kept_here = kept_at_value.get(neighbours[j])
            if kept_here is None or (best is not None and neighbour_distance[j] > best[0]):
                continue
            kept, color = _first_color_match(position, kept_here, rows, known, limit)
            if kept is not None and (best is None or (neighbour_distance[j], kept) < best[:2]):
                best = (neighbour_distance[j], kept, color)
        if best is None:
            kept_at_value.setdefault(value, []).append(position)
        else:
            duplicates[position] = (best[1], best[0], best[2])
    return duplicates


def _first_color_match(
    position: int, kept: list[int], rows: np.ndarray, known: np.ndarray, limit: float
) -> tuple[int | None, float | None]:
    """The best-ranked of `kept` whose colour passes against `position`, and the colour distance."""
    if not known[position]:
        return kept[0], None
    others = np.array(kept, dtype=np.int64)
    mine = np.broadcast_to(rows[position], (others.size, rows.shape[1]))
    passes, color = _color_gate(mine, np.ones(others.size, dtype=bool), rows[others], known[others], limit)
    if not passes.any():
        return None, None
    first = int(np.argmax(passes))
    return kept[first], None if math.isnan(color[first]) else float(color[first])


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
