"""The numbers of a quality-model report: the validation grid scored by the model and by two heuristic
baselines in one pass, and the product ranking of committed photos.

In: a `Storage` holding `pairs/quality_grid/<date>` (and `images/<date>`), a `QualityScorer`
(pipeline/quality/scorer.py: the exported ONNX model on ONNX Runtime, what the data side serves), the
grid's partitions / split / max_groups (a `QualityGateConfig`: the report scores exactly the canvases
the verdict was measured on, training/gates/quality_validate.py `validation_grid`), and for the ranking the
image partitions and how many products and photos.

Out: `open_scorer` -> the scorer of the given ONNX file or bytes, or of the verdict's checkpoint
exported here with training/serve/export_onnx.py at the grid's canvas side (as validate_quality exports);
`score_grid` -> `GridScores` (per canvas: sample_id, family, target and the three scores; per
scorer: training/fit/lit_quality.py `quality_metrics`, SRCC/PLCC/KRCC overall and per family, in-reference
pair accuracy); `rank_products` -> one record per product: its photos sorted by learned score, best
first (image_id, partition, score, width, height), the photos that did not decode listed with ingest's
reason code, plus each photo's thumbnail for the contact sheet.

The baselines, on the same canvases (pipeline/clean/quality.py `measure`, the ingest metrics):
- `log_sharpness`: log(1 + variance of the 4-neighbour Laplacian of luma);
- `heuristic`: the mean of six signed z-scores over the scored canvases, one per metric ingest flags
  on: + log(1 + sharpness), - log(1 + noise_sigma), - log(blockiness), + contrast, + dark_score,
  + light_score (blurry, noisy, blocky, low-contrast, dark and washed-out canvases score low). The
  z-scores use the canvases' own mean and deviation, never the targets: no fitting.
BRISQUE (bench-only, bench/iqa_baselines.py) and NIQE (pipeline/niqe.py) figures are in bench/results/quality.json.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from PIL import Image

from pipeline.clean.normalize import Rejection, decode_rgb
from pipeline.clean.quality import QualityMetrics, measure
from pipeline.commit import read_manifest
from pipeline.ingest.read import DATASET, INDEX, read_image, read_table
from pipeline.quality.scorer import QualityScorer
from training.data.quality import RECIPE, grid_canvas
from training.fit.lit_quality import quality_metrics
from training.gates.quality_gates import CHAMPION_PREFIX
from training.gates.quality_validate import validation_grid
from training.gates.verdict import QualityGateConfig, Verdict
from training.report.common import load_model

log = logging.getLogger(__name__)

SCORERS = ("model", "log_sharpness", "heuristic")
# (sign, metric) of the combined heuristic; log-scaled where the metric spans decades
HEURISTIC_TERMS = (
    (+1, "log_sharpness"),
    (-1, "log_noise"),
    (-1, "log_blockiness"),
    (+1, "contrast"),
    (+1, "dark_score"),
    (+1, "light_score"),
)
INDEX_COLUMNS = ["image_id", "product_id", "shard", "offset", "size", "width", "height"]


@dataclass(frozen=True)
class GridScores:
    partitions: list[str]
    manifest_hash: str
    split: str
    groups: int
    canvas_long_side: int
    samples: list[dict[str, Any]]  # sample_id, group_id, family, target and one score per SCORERS
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # scorer -> quality_metrics


def open_scorer(
    onnx: str | Path | bytes | None,
    verdict: Verdict,
    storage: Any,
    grid: QualityGateConfig,
    storage_options: Mapping[str, Any] | None,
    tmp: Path,
) -> tuple[QualityScorer, str]:
    """The data side's scorer of the model (bytes are written to `tmp`), and where the ONNX came from."""
    if isinstance(onnx, str | Path):
        return QualityScorer(onnx), str(onnx)
    source = "the ONNX bytes given"
    if onnx is None:
        from training.serve.export_onnx import export_onnx

        _, rows, catalog = validation_grid(storage, grid)
        side, version = grid_canvas(catalog.rows, rows)  # the grid's canvas: what the model was trained on
        model = load_model(verdict, storage_options)
        exported = export_onnx(model, side, verdict.config.export_atol, canvas_version=version)
        if exported.data is None:
            raise ValueError(f"cannot export {verdict.checkpoint} to ONNX: {exported.error}")
        onnx = exported.data
        source = f"exported from the checkpoint here (max |ORT - eager| {exported.max_abs_diff:.2g})"
    (tmp / "model.onnx").write_bytes(onnx)
    return QualityScorer(tmp / "model.onnx"), source


def _features(found: QualityMetrics) -> dict[str, float]:
    return {
        "log_sharpness": math.log1p(found.sharpness),
        "log_noise": math.log1p(found.noise_sigma),
        "log_blockiness": math.log(max(found.blockiness, 1e-6)),
        "contrast": found.contrast,
        "dark_score": found.dark_score,
        "light_score": found.light_score,
    }


def combined_heuristic(features: Sequence[dict[str, float]]) -> np.ndarray:
    """The mean of the signed z-scores of HEURISTIC_TERMS over `features` (a constant term counts 0)."""
    total = np.zeros(len(features))
    for sign, name in HEURISTIC_TERMS:
        values = np.array([f[name] for f in features], dtype=np.float64)
        spread = values.std()
        if spread > 0:
            total += sign * (values - values.mean()) / spread
    return total / len(HEURISTIC_TERMS)


def _metrics(samples: list[dict[str, Any]], scorer: str, groups: dict[str, int]) -> dict[str, float]:
    records = [(s["sample_id"], s[scorer], s["target"], groups[s["group_id"]], s["family"]) for s in samples]
    found = quality_metrics(records)
    found["pair_accuracy"] = found.pop("pair_acc")
    return found


def score_grid(storage: Any, scorer: QualityScorer, config: QualityGateConfig) -> GridScores:
    """Every canvas of the validation grid `config` names, scored by the model and both baselines."""
    reader, rows, catalog = validation_grid(storage, config)
    table = catalog.rows
    columns = {
        name: table[name].take(rows).to_pylist() for name in ("sample_id", "group_id", "family", "target")
    }
    samples, features = [], []
    for number, row in enumerate(rows):
        (canvas,) = reader.read([row])
        found = _features(measure(canvas, "png"))
        features.append(found)
        samples.append(
            {
                "sample_id": columns["sample_id"][number],
                "group_id": columns["group_id"][number],
                "family": columns["family"][number],
                "target": float(columns["target"][number]),
                "model": scorer.score_canvas(canvas),
                "log_sharpness": found["log_sharpness"],
            }
        )
    for sample, value in zip(samples, combined_heuristic(features), strict=True):
        sample["heuristic"] = float(value)
    groups = {g: i for i, g in enumerate(dict.fromkeys(s["group_id"] for s in samples))}
    log.info("scored %d canvases of %d %s references", len(samples), len(groups), config.grid_split)
    return GridScores(
        partitions=[f"pairs/{RECIPE}/{p}" for p in catalog.partitions],
        manifest_hash=catalog.manifest_hash,
        split=config.grid_split,
        groups=len(groups),
        canvas_long_side=scorer.canvas_long_side,
        samples=samples,
        metrics={name: _metrics(samples, name, groups) for name in SCORERS},
    )


def family_table(grid: GridScores, verdict_metrics: dict[str, float]) -> list[dict[str, Any]]:
    """One row per family with a SRCC (families whose targets vary), after an "all" row: samples and the
    SRCC of each scorer, and the SRCCs the verdict gated on (eager torch, same canvases): the model's and
    the champion's (None when no champion was compared)."""
    families = sorted({k.split("/", 1)[1] for k in grid.metrics["model"] if k.startswith("srcc/")})
    rows = []
    for family in ["all", *families]:
        key = "srcc" if family == "all" else f"srcc/{family}"
        samples = sum(1 for s in grid.samples if family in ("all", s["family"]))
        row: dict[str, Any] = {"family": family, "samples": samples}
        row.update({f"{name}_srcc": grid.metrics[name].get(key) for name in SCORERS})
        row["verdict_srcc"] = verdict_metrics.get(key)
        row["champion_srcc"] = verdict_metrics.get(f"{CHAMPION_PREFIX}{key}")
        rows.append(row)
    return rows


@dataclass(frozen=True)
class RankedProduct:
    record: dict[str, Any]  # product_id, photos (best first), failed
    thumbnails: list[Image.Image]  # in `photos` order


def _index(storage: Any, partitions: Sequence[str]) -> list[tuple[Any, dict[str, Any]]]:
    """(manifest, index row) of every photo of the committed image partitions."""
    found = []
    for partition in partitions:
        manifest = read_manifest(storage, DATASET, partition)
        table: pa.Table = read_table(storage, manifest, INDEX, INDEX_COLUMNS)
        found += [(manifest, {**row, "partition": partition}) for row in table.to_pylist()]
    return found


def rank_products(
    storage: Any, partitions: Sequence[str], scorer: QualityScorer, products: int, photos: int, thumb: int
) -> tuple[list[RankedProduct], int]:
    """The `products` products with the most photos (ties by product_id), each with up to `photos` photos
    (by image_id) sorted by score, best first; and how many photos had no product_id (not ranked)."""
    by_product: dict[str, list[tuple[Any, dict[str, Any]]]] = {}
    orphans = 0
    for manifest, row in _index(storage, partitions):
        if row["product_id"] is None:
            orphans += 1
            continue
        by_product.setdefault(str(row["product_id"]), []).append((manifest, row))
    chosen = sorted(by_product, key=lambda p: (-len(by_product[p]), p))[:products]
    ranked = []
    for product in chosen:
        scored, failed = [], []
        for manifest, row in sorted(by_product[product], key=lambda item: item[1]["image_id"])[:photos]:
            image = decode_rgb(read_image(storage, manifest, row))
            if isinstance(image, Rejection):
                failed.append({"image_id": row["image_id"], "reason": image.reason, "detail": image.detail})
                continue
            score = scorer.score_rgb(np.asarray(image))
            image.thumbnail((2 * thumb, thumb), Image.LANCZOS)
            entry = {key: row[key] for key in ("image_id", "partition", "width", "height")}
            scored.append(({**entry, "score": score}, image))
        scored.sort(key=lambda item: (-item[0]["score"], item[0]["image_id"]))
        for rank, (entry, _) in enumerate(scored, start=1):
            entry["rank"] = rank
        record = {"product_id": product, "photos": [e for e, _ in scored], "failed": failed}
        ranked.append(RankedProduct(record, [t for _, t in scored]))
    log.info("ranked the photos of %d products (%d photos without a product_id)", len(ranked), orphans)
    return ranked, orphans
