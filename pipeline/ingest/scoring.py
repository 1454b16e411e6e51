"""Scoring: the learned quality model of one ingest, resolved on the driver, run on the workers, ranked.

In: `IngestConfig.quality_model` and `min_quality`, the storage root and the settings' MLflow tracking URI
(on the driver, before anything is fetched); the normalized pixels of each cleaned image (on a worker);
the partition's accepted index records (on the driver, before writing).
Out: `resolve_quality_model` -> a `QualityModel` (the ONNX bytes and their sha256, where they came from,
e.g. `models:/crisp-quality/3`, and `min_quality`), or None when the run does not score;
`QualityModel.score(pixels)` -> the learned score in [0, 5]; `rank_in_product(records)` -> the records
with `rank_in_product` set: 1 = the best score among the accepted images of one product, ties broken by
image_id, null for an image without a score.

`quality_model`: "auto" takes `models:/crisp-quality@champion` from the registry at
`registry_tracking_uri(root, tracking_uri)` when it is registered and scores nothing otherwise (no
registry, no such model or alias: one INFO line, and the run is what it was without a model); "off" never
scores; anything else must resolve. A reference that does not resolve, a registered champion that is not
a usable model, an unreadable registry, or `min_quality` without a model to score with, is one
`QualityModelError` line (exit 2) before any URL is fetched, so nothing is committed.

The model is resolved once; its bytes travel to each worker once (`distribute` scatters the
`QualityModel` to every worker) and each worker process builds one `QualityScorer` per model, cached by
the sha256 of the bytes, with one onnxruntime thread (a Dask worker is one single-threaded process per
core). `process.process_image` scores the pixels it has already decoded.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import threading
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.ingest.config import IngestConfig
from pipeline.quality import (
    ModelNotRegisteredError,
    QualityModelError,
    QualityScorer,
    registry_tracking_uri,
    resolve_model_file,
)

log = logging.getLogger(__name__)

AUTO, OFF = "auto", "off"
CHAMPION = "models:/crisp-quality@champion"  # what "auto" looks for, as `crisp quality score` does
SCORERS_KEPT = 2  # a long-lived worker keeps the scorers of the latest models only
_SCORERS: OrderedDict[str, QualityScorer] = OrderedDict()  # sha256 of the ONNX bytes -> scorer
_SCORERS_LOCK = threading.Lock()


@dataclass(frozen=True)
class QualityModel:
    """The quality model of one ingest run, as the driver ships it to the workers."""

    source: str  # a path, or models:/<name>/<version>
    onnx: bytes = field(repr=False)
    sha256: str
    min_quality: float | None = None

    def scorer(self) -> QualityScorer:
        """This process's scorer of the model (built on first use, then cached by `sha256`)."""
        return _cached_scorer(self.sha256, lambda: _open_scorer(self.onnx))

    def score(self, pixels: Any) -> float:
        """The learned score (0-5) of one RGB uint8 H x W x 3 image."""
        return self.scorer().score_rgb(pixels)

    def too_low(self, score: float) -> bool:
        """True when `score` is below `min_quality` (never without one)."""
        return self.min_quality is not None and score < self.min_quality


def resolve_quality_model(
    config: IngestConfig, root: str, tracking_uri: str | None = None
) -> QualityModel | None:
    """The run's model (see the module docstring), opened once here so a bad file fails before fetching."""
    reference = config.quality_model.strip()
    if reference.lower() == OFF:
        return _without_model(config, "ingest.quality_model is 'off'")
    auto = reference.lower() == AUTO
    if auto:
        reference = CHAMPION
    registry = registry_tracking_uri(root, tracking_uri) if reference.startswith("models:/") else None
    with tempfile.TemporaryDirectory(prefix="crisp-quality-", dir=config.workdir) as download_dir:
        try:
            found = resolve_model_file(reference, Path(download_dir), registry)
            data = found.path.read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            # opened here, on the file itself, so a bad one is named now; cached for driver-side cleaning
            scorer = _cached_scorer(digest, lambda: QualityScorer(found.path, threads=1))
        except ModelNotRegisteredError as exc:
            if not auto:
                raise QualityModelError(f"ingest.quality_model={config.quality_model!r}: {exc}") from None
            return _without_model(config, f"{CHAMPION} is not registered at {registry}", str(exc))
        except QualityModelError as exc:
            raise QualityModelError(f"ingest.quality_model={config.quality_model!r}: {exc}") from None
    model = QualityModel(found.source, data, digest, config.min_quality)
    log.info(
        "ingest: scoring images with the quality model %s (canvas %d px)%s",
        model.source,
        scorer.canvas_long_side,
        f", rejecting scores under {config.min_quality:g}" if config.min_quality is not None else "",
    )
    return model


def rank_in_product(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The records with `rank_in_product`: 1..n within each product_id by descending `quality_learned`,
    ties by image_id; None for records without a score (they are not ranked)."""
    by_product: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for record in records:
        if record.get("quality_learned") is not None:
            by_product[record["product_id"]].append(record)
    ranks: dict[str, int] = {}
    for rows in by_product.values():
        rows.sort(key=lambda r: (-r["quality_learned"], r["image_id"]))
        ranks.update((row["row_key"], number) for number, row in enumerate(rows, start=1))
    return [{**record, "rank_in_product": ranks.get(record["row_key"])} for record in records]


def _without_model(config: IngestConfig, why: str, detail: str = "") -> None:
    """None (no scoring), or QualityModelError when `min_quality` asks for a model."""
    if config.min_quality is not None:
        raise QualityModelError(
            f"ingest.min_quality={config.min_quality:g} needs a quality model, but {why}: register "
            f"{CHAMPION}, set ingest.quality_model to a model, or unset ingest.min_quality"
        )
    log.info(
        "ingest: images are not scored by a learned quality model: %s%s", why, f" ({detail})" * bool(detail)
    )
    return None


def _cached_scorer(digest: str, build: Callable[[], QualityScorer]) -> QualityScorer:
    """The scorer cached under `digest` in this process, else `build()`'s (the oldest ones dropped)."""
    with _SCORERS_LOCK:
        scorer = _SCORERS.get(digest)
        if scorer is None:
            scorer = _SCORERS[digest] = build()
            while len(_SCORERS) > SCORERS_KEPT:
                _SCORERS.popitem(last=False)
        else:
            _SCORERS.move_to_end(digest)
    return scorer


def _open_scorer(onnx: bytes) -> QualityScorer:
    """A one-thread scorer on `onnx` (written to a temp file the open session no longer needs)."""
    with tempfile.TemporaryDirectory(prefix="crisp-quality-") as folder:
        path = Path(folder) / "model.onnx"
        path.write_bytes(onnx)
        return QualityScorer(path, threads=1)
