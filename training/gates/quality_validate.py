"""Decide whether a quality-model checkpoint may serve: score the frozen validation grid, then apply the gates.

In: a checkpoint URI, a `QualityGateConfig` (thresholds from `QualityGatePolicy` plus which grid
partitions and split to score), optionally the loaded champion (`Champion`, training/gates/validate.py), and a
`Storage` holding `pairs/quality_grid`. Out: a `Validation` (training/gates/validate.py) whose `Verdict` holds the
metrics (training/fit/lit_quality.py `quality_metrics`: SRCC/PLCC/KRCC overall and per family, in-reference
pair accuracy; plus the AUC of the reject decision at `reject_threshold`, and the champion's SRCC on the
same canvases as `champion/srcc`), the ONNX export check and the data side's scoring latency, with one
`GateResult` per gate (training/gates/quality_gates.py, the same code promotion re-applies).

Steps: safe load (weights only, the quality arch zoo); every canvas of the split's first `max_groups`
references (sorted by group) scored by the EMA-weighted model and by the champion; ONNX export with
parity at two sizes other than the traced one; latency of `pipeline.quality.scorer` on a 512-px photo.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from scipy import stats

from training.data.catalog import DataError
from training.data.quality import MemberReader, QualityCatalog, grid_canvas, load_quality_catalog
from training.fit.lit_quality import quality_metrics
from training.gates.quality_gates import CHAMPION_PREFIX, quality_threshold_gates
from training.gates.safe_load import CheckpointRejected, LoadReason, safe_load
from training.gates.validate import Champion, Validation, read_candidate
from training.gates.verdict import GateResult, QualityGateConfig, failed_reasons
from training.serve.export_onnx import export_onnx, onnx_latency_ms

LATENCY_SIDE = 512  # the photo size of the latency target (issue #13)


def reject_auc(scores: np.ndarray, targets: np.ndarray, threshold: float) -> float:
    """AUC of rejecting by score for the samples whose target is below `threshold`: P(a good sample
    outscores a bad one), ties half (Mann-Whitney U / n_good n_bad); NaN when one side is empty."""
    bad, good = scores[targets < threshold], scores[targets >= threshold]
    if not len(bad) or not len(good):
        return float("nan")
    return float(stats.mannwhitneyu(good, bad).statistic / (len(good) * len(bad)))


def validation_grid(
    storage: Any, config: QualityGateConfig
) -> tuple[MemberReader, list[int], QualityCatalog]:
    """(canvas reader, row numbers, the catalog) of the frozen validation split: every member of the
    split's first `max_groups` references by group_id (the quality report scores the same canvases)."""
    catalog = load_quality_catalog(storage, config.grid_partitions or "all")
    groups = catalog.groups(config.grid_split)
    if not groups:
        raise DataError(f"no {config.grid_split!r} references in pairs/quality_grid {catalog.partitions}")
    chosen = sorted(groups)[: config.max_groups] if config.max_groups else sorted(groups)
    rows = [row for group in chosen for row in groups[group]]
    return MemberReader(catalog.rows, storage.root, storage.options), rows, catalog


def _scores(module: torch.nn.Module, reader: MemberReader, rows: list[int]) -> np.ndarray:
    out = []
    with torch.no_grad():
        for row in rows:
            (canvas,) = reader.read([row])
            image = torch.from_numpy(np.ascontiguousarray(canvas)).permute(2, 0, 1)[None].float() / 255.0
            out.append(float(module(image).reshape(-1)[0]))
    return np.array(out, dtype=np.float64)


def _photo() -> np.ndarray:
    """A deterministic 512 x 384 test photo for the latency measurement (content does not change timing)."""
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(384, LATENCY_SIDE, 3), dtype=np.uint8)


def validate_quality(
    uri: str, config: QualityGateConfig | None = None, champion: Champion | None = None, *, storage: Any = None,
    storage_options: dict[str, Any] | None = None,
) -> Validation:  # fmt: skip
    """The verdict of checkpoint `uri` plus the checkpoint bytes; `storage` holds the validation grid."""
    config = config or QualityGateConfig()
    if storage is None:
        raise ValueError("validate_quality needs the storage that holds pairs/quality_grid")
    uri = str(uri)
    verdict, data, options = read_candidate(uri, config, storage, storage_options)
    try:
        model, meta = safe_load(uri, storage_options=options, data=data)
        if meta.task != "quality":
            raise CheckpointRejected(
                LoadReason.UNKNOWN_ARCH, f"{uri} is a {meta.task} model, not a quality model"
            )
    except CheckpointRejected as exc:
        gate = GateResult(gate="safe_load", passed=False, detail=str(exc))
        return Validation(verdict.model_copy(update={"gates": [gate], "reasons": [str(exc)]}), None, data)
    gates = [GateResult(gate="safe_load", passed=True, detail=f"{meta.arch}, {meta.weights} weights")]
    reader, rows, catalog = validation_grid(storage, config)
    table = catalog.rows
    targets = np.array(table["target"].take(rows).to_pylist(), dtype=np.float64)
    groups = table["group_id"].take(rows).to_pylist()
    group_ids = {g: i for i, g in enumerate(dict.fromkeys(groups))}
    families = table["family"].take(rows).to_pylist()
    keys = table["sample_id"].take(rows).to_pylist()

    def measured(scores: np.ndarray) -> dict[str, float]:
        records = [(k, float(s), float(t), group_ids[g], f)
                   for k, s, t, g, f in zip(keys, scores, targets, groups, families, strict=True)]  # fmt: skip
        found = quality_metrics(records)
        found["pair_accuracy"] = found.pop("pair_acc")
        found["reject_auc"] = reject_auc(scores, targets, config.reject_threshold)
        return found

    scores = _scores(model, reader, rows)
    metrics = measured(scores)
    if champion is not None and champion.module is not None:
        for name, value in measured(_scores(champion.module.eval(), reader, rows)).items():
            metrics[f"{CHAMPION_PREFIX}{name}"] = value
    canvas_side, version = grid_canvas(catalog.rows, rows)  # the grid's canvas: what the model was trained on
    exported = export_onnx(model, canvas_side, config.export_atol, canvas_version=version)
    latency = (
        onnx_latency_ms(exported.data, _photo(), config.latency_repeats)
        if exported.data is not None
        else None
    )
    verdict = verdict.model_copy(
        update={"meta": meta, "metrics": metrics, "export": exported.record(), "latency_ms": latency,
                "champion": champion.ref if champion is not None else None}
    )  # fmt: skip
    gates += quality_threshold_gates(verdict, config)
    reasons = failed_reasons(gates)
    verdict = verdict.model_copy(update={"gates": gates, "reasons": reasons, "passed": not reasons})
    return Validation(verdict, exported, data)
