"""Clean: fetched bytes -> normalized 8-bit sRGB image, content id, perceptual hash, quality, dedup.

In: encoded image bytes (from the crawler) and a `CleanConfig`. Out: `NormalizedImage` or `Rejection`
(`normalize`), `image_id` / `phash` / `color_signature` (`hashing`), `QualityMetrics` and flags
(`quality`), main-image `Compliance` (`compliance`), and the keep / duplicate decision for a partition
against earlier ones (`dedup`). Pure functions over bytes and arrays.
"""

from pipeline.clean.compliance import Compliance, check_compliance
from pipeline.clean.config import CleanConfig, ComplianceConfig, QualityThresholds
from pipeline.clean.dedup import Candidate, DedupResult, Duplicate, PriorHashes, resolve_duplicates
from pipeline.clean.hashing import (
    COLOR_SIGNATURE_BYTES,
    color_distance,
    color_signature,
    hamming,
    image_id,
    phash,
)
from pipeline.clean.normalize import NormalizedImage, Rejection, normalize
from pipeline.clean.quality import FLAG_NAMES, QualityMetrics, estimate_jpeg_quality, flags, measure

__all__ = [
    "COLOR_SIGNATURE_BYTES",
    "FLAG_NAMES",
    "Candidate",
    "CleanConfig",
    "Compliance",
    "ComplianceConfig",
    "DedupResult",
    "Duplicate",
    "NormalizedImage",
    "PriorHashes",
    "QualityMetrics",
    "QualityThresholds",
    "Rejection",
    "check_compliance",
    "color_distance",
    "color_signature",
    "estimate_jpeg_quality",
    "flags",
    "hamming",
    "image_id",
    "measure",
    "normalize",
    "phash",
    "resolve_duplicates",
]
