"""Outcomes: decide where every fetched feed row ends - accepted, duplicate of an image, or rejected.

In: the feed rows that were fetched, the `Processed` result of each distinct URL, the hashes of images
already committed (`load_prior`: those of partitions dated before this one near a candidate, from the
persistent dedup index), the partition and the config.
Out: index records of the accepted images (split assigned by product; the learned score and compliance
measures from cleaning; `rank_in_product` is left for the run to set over all of the partition's accepted
images), duplicate ledger records and reject ledger records, as plain dicts matching the declared
schemas. `check_outcomes` proves that every input row has exactly one outcome.

Duplicates are resolved by `pipeline.clean.resolve_duplicates`: exact (same decoded pixels) or near
(pHash within `clean.phash_radius` and colour signatures within `clean.color_distance_max`; a prior
image without a signature, from a schema v1 index, is compared by pHash alone); images committed earlier
always win, and inside the partition the larger, then sharper image is kept. Only earlier dates count as
prior, so rerunning or backfilling an old date never turns images that later days already point to into
duplicates.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import numpy as np

from pipeline.clean import Candidate, PriorHashes, resolve_duplicates
from pipeline.ingest import dedup_index
from pipeline.ingest.config import IngestConfig
from pipeline.ingest.feed import FeedRow
from pipeline.ingest.process import Processed
from pipeline.ingest.split import assign_splits
from pipeline.storage import Storage
from schemas.image_index import phash_to_int64
from schemas.reasons import is_retryable


class OutcomeError(RuntimeError):
    """Some input row has no outcome or more than one: a bug, never bad input."""


def check_outcomes(inputs: Iterable[str], *outcomes: Iterable[str]) -> None:
    """Every input row_key appears in exactly one outcome list; OutcomeError names the first offenders."""
    wanted = Counter(inputs)
    seen = Counter(key for keys in outcomes for key in keys)
    missing, twice = sorted(set(wanted) - set(seen)), sorted(k for k, n in seen.items() if n > 1)
    unknown = sorted(set(seen) - set(wanted))
    repeated_inputs = sorted(k for k, n in wanted.items() if n > 1)
    if missing or twice or unknown or repeated_inputs:
        raise OutcomeError(
            f"outcome accounting broken: no outcome for {missing[:3]}, several for {twice[:3]}, "
            f"unknown {unknown[:3]}, repeated inputs {repeated_inputs[:3]}"
        )


def load_prior(
    storage: Storage, partition: str, own_index: Any | None, phashes: Sequence[int], radius: int
) -> tuple[PriorHashes, dict[str, str]]:
    """Committed images that can decide the fate of candidates with these `phashes`: those of partitions
    dated before `partition` within `radius` of one of them (from the persistent `dedup_index`, brought up
    to date first), then, on retry, the partition's own kept images (`own_index`); and each one's partition.

    A schema v1 index has no colour signatures: its images come back with colour unknown (None), so
    dedup compares them by pHash alone."""
    index = dedup_index.sync(storage, before=partition)
    prior, owner = dedup_index.prior_near(
        storage, partition, np.array(phashes, dtype=np.uint64), radius, index
    )
    if own_index is not None:
        ids = own_index["image_id"].to_pylist()
        has_color = "color_signature" in own_index.column_names
        colors = own_index["color_signature"].to_pylist() if has_color else None
        own = PriorHashes.from_arrays(ids, own_index["phash"].to_numpy(), colors)
        prior = prior.merged_with(own)
        owner |= {image_id: partition for image_id in ids if image_id not in owner}
    return prior, owner


def reject_record(
    key: str,
    product_id: str | None,
    url: str | None,
    stage: str,
    reason: str,
    detail: str,
    partition: str,
    at: datetime,
    status: int | None = None,
    attempts: int | None = None,
) -> dict[str, Any]:
    """One reject ledger record; `retryable` follows the reason code."""
    return {
        "row_key": key,
        "product_id": product_id,
        "url": url,
        "stage": stage,
        "reason": str(reason),
        "detail": detail,
        "retryable": is_retryable(reason),
        "http_status": status,
        "attempts": attempts,
        "partition": partition,
        "recorded_at": at,
    }


def decide_outcomes(
    rows: list[FeedRow],
    by_url: dict[str, Processed],
    prior: PriorHashes,
    prior_partition: dict[str, str],
    partition: str,
    config: IngestConfig,
    now: datetime,
) -> tuple[list[dict], list[dict], list[dict]]:
    """Accepted index records, duplicate records and reject records of the fetched rows."""
    rejects, candidates, images = [], [], {}
    for row in rows:
        p = by_url[row.image_url]
        f = p.fetch
        if not f.ok or p.image is None:
            stage, why = ("fetch", (f.reason, f.detail)) if not f.ok else ("clean", _why(p))
            at = (f.fetched_at, f.http_status, f.attempts)
            rejects.append(
                reject_record(row.row_key, row.product_id, row.image_url, stage, *why, partition, *at)
            )
        else:
            image = p.image
            quality = image.metrics.get("sharpness") or 0.0
            candidates.append(
                Candidate(
                    row.row_key,
                    image.image_id,
                    image.phash,
                    image.width,
                    image.height,
                    quality,
                    image.color_signature,
                )
            )
            images[row.row_key] = (row, p)
    result = resolve_duplicates(candidates, prior, config.clean.phash_radius, config.clean.color_distance_max)
    splits = assign_splits((images[c.key][0].product_id for c in result.keep), config.split)
    accepted = [
        index_record(*images[c.key], splits[images[c.key][0].product_id], partition, now) for c in result.keep
    ]
    duplicates = []
    for dup in result.duplicates:
        row, p = images[dup.candidate.key]
        of = (dup.duplicate_of, prior_partition.get(dup.duplicate_of, partition))
        size = (dup.candidate.width, dup.candidate.height)
        duplicates.append(
            duplicate_record(row, dup.candidate.image_id, of, dup.kind, dup.distance, size, partition, p)
        )
    return accepted, duplicates, rejects


def duplicate_record(
    row: FeedRow, content_id: str, of: tuple[str, str], kind: str, distance: int, size: tuple[int, int],
    partition: str, p: Processed,
) -> dict[str, Any]:  # fmt: skip
    """One duplicate ledger record: `content_id` (an image_id, or a video's video_id) is a `kind` duplicate
    of `of` = (its id, its partition), `distance` pHash bits apart, `size` = (width, height)."""
    return {
        "row_key": row.row_key,
        "product_id": row.product_id,
        "url": row.image_url,
        "image_id": content_id,
        "duplicate_of": of[0],
        "duplicate_of_partition": of[1],
        "kind": kind,
        "hamming_distance": distance,
        "width": size[0],
        "height": size[1],
        "partition": partition,
        "recorded_at": p.fetch.fetched_at,
    }


def _why(processed: Processed) -> tuple[str, str]:
    assert processed.rejection is not None  # fetched fine but no image: cleaning rejected it
    return processed.rejection.reason, processed.rejection.detail


def index_record(row: FeedRow, p: Processed, split: str, partition: str, now: datetime) -> dict[str, Any]:
    """The image index record of an accepted row (all columns but the shard location, added on writing)."""
    image = p.image
    assert image is not None
    compliance = image.compliance
    return {
        "image_id": image.image_id,
        "product_id": row.product_id,
        "url": row.image_url,
        "split": split,
        "width": image.width,
        "height": image.height,
        "format": image.stored_format,
        "phash": phash_to_int64(image.phash),
        "partition": partition,
        "row_key": row.row_key,
        "category": row.category,
        "title": row.title,
        "extra": row.extra,
        "source_format": image.source_format,
        "reencoded": image.reencoded,
        "bytes_sha256": image.bytes_sha256,
        "normalize_flags": list(image.normalize_flags),
        "color_signature": image.color_signature,
        **image.metrics,
        "quality_flags": list(image.quality_flags),
        "quality_learned": image.quality_learned,
        "rank_in_product": None,  # set over the partition's accepted images (scoring.rank_in_product)
        "white_border_share": compliance.white_border_share if compliance else None,
        "product_fill": compliance.product_fill if compliance else None,
        "compliant": compliance.compliant if compliance else None,
        "fetched_at": p.fetch.fetched_at,
        "ingested_at": now,
    }
