"""Decide whether a matte-model checkpoint may serve: score held-out composites, then apply the gates.

In: a checkpoint URI, a `MatteGateConfig` (thresholds from `MatteGatePolicy` plus which composite
partitions and split to score), optionally the loaded champion (`Champion`), and a `Storage` holding
`pairs/matte_composites`. Out: a `Validation` whose `Verdict` holds the metrics (pipeline/matte/measure.py,
per-composite means: iou, mae, sad, grad, boundary_f, `iou/<background kind>`, and the champion's as
`champion/<name>` on the same composites), the ONNX export check and the served path's latency, with one
`GateResult` per gate (training/gates/matte_gates.py, the same code promotion re-applies).

Steps: safe load (weights only, the matte arch zoo); every composite of the split (the first
`max_samples` by sample_id) matted by the EMA-weighted model and by the champion at the composite's own
size; ONNX export (output `alpha`) with parity at two sizes other than the traced one; latency of
pipeline/matte/predict.py on a 1000 x 1000 photo, canvas `canvas_long_side`, one thread.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.matte.measure import matte_measures, mean_measures
from training.data.catalog import DataError
from training.data.matte import decode_sample, load_matte_catalog, matte_reader
from training.gates.matte_gates import CHAMPION_PREFIX, matte_threshold_gates
from training.gates.safe_load import CheckpointRejected, LoadReason, safe_load
from training.gates.validate import Champion, Validation, read_candidate
from training.gates.verdict import GateResult, MatteGateConfig, failed_reasons
from training.serve.export_onnx import export_onnx

LATENCY_SIDE = 1000  # the photo size of the latency target (issue #14)


def held_out(storage: Any, config: MatteGateConfig) -> tuple[list[dict[str, np.ndarray]], list[str]]:
    """The decoded composites of the held-out split (first `max_samples` by sample_id) and their kinds."""
    catalog = load_matte_catalog(storage, config.sample_partitions or "all")
    splits = catalog.rows["split"].to_pylist()
    rows = [r for r, name in enumerate(splits) if name == config.sample_split][: config.max_samples]
    if not rows:
        raise DataError(
            f"no {config.sample_split!r} composites in pairs/matte_composites {catalog.partitions}"
        )
    reader = matte_reader(catalog, storage.root, storage.options)
    kinds = catalog.rows["background"].to_pylist()
    return [decode_sample(m) for m in reader.read_members(rows)], [kinds[r] for r in rows]


def _measures(
    module: torch.nn.Module, samples: list[dict[str, np.ndarray]], kinds: list[str]
) -> dict[str, float]:
    found = []
    with torch.no_grad():
        for sample in samples:
            image = torch.from_numpy(sample["image"].copy()).permute(2, 0, 1)[None].float() / 255.0
            alpha = module(image)[0, 0].numpy()
            found.append(matte_measures(alpha, sample["alpha"].astype(np.float32) / 255.0))
    metrics = mean_measures(found)
    for kind in sorted(set(kinds)):
        metrics[f"iou/{kind}"] = mean_measures([m for m, k in zip(found, kinds, strict=True) if k == kind])[
            "iou"
        ]
    metrics["samples"] = float(len(found))
    return metrics


def served_latency_ms(data: bytes, repeats: int) -> float:
    """Median ms for pipeline/matte/predict.py (one thread) to matte a 1000 x 1000 photo at full resolution,
    one untimed warm-up run first."""
    from pipeline.matte.predict import MattePredictor

    photo = np.random.default_rng(0).integers(0, 256, (LATENCY_SIDE, LATENCY_SIDE, 3), dtype=np.uint8)
    with tempfile.TemporaryDirectory(prefix="crisp-matte-") as tmp:
        path = Path(tmp) / "model.onnx"
        path.write_bytes(data)
        predictor = MattePredictor(path, threads=1)
        predictor.alpha(photo)
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            predictor.alpha(photo)
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def validate_matte(
    uri: str, config: MatteGateConfig | None = None, champion: Champion | None = None, *, storage: Any = None,
    storage_options: dict[str, Any] | None = None,
) -> Validation:  # fmt: skip
    """The verdict of checkpoint `uri` plus the checkpoint bytes; `storage` holds the composites."""
    config = config or MatteGateConfig()
    if storage is None:
        raise ValueError("validate_matte needs the storage that holds pairs/matte_composites")
    uri = str(uri)
    verdict, data, options = read_candidate(uri, config, storage, storage_options)
    try:
        model, meta = safe_load(uri, storage_options=options, data=data)
        if meta.task != "matte":
            raise CheckpointRejected(
                LoadReason.UNKNOWN_ARCH, f"{uri} is a {meta.task} model, not a matte model"
            )
    except CheckpointRejected as exc:
        gate = GateResult(gate="safe_load", passed=False, detail=str(exc))
        return Validation(verdict.model_copy(update={"gates": [gate], "reasons": [str(exc)]}), None, data)
    gates = [GateResult(gate="safe_load", passed=True, detail=f"{meta.arch}, {meta.weights} weights")]
    samples, kinds = held_out(storage, config)
    metrics = _measures(model.eval(), samples, kinds)
    if champion is not None and champion.module is not None:
        for name, value in _measures(champion.module.eval(), samples, kinds).items():
            metrics[f"{CHAMPION_PREFIX}{name}"] = value
    exported = export_onnx(model, config.canvas_long_side, config.export_atol, output="alpha")
    latency = served_latency_ms(exported.data, config.latency_repeats) if exported.data is not None else None
    verdict = verdict.model_copy(
        update={"meta": meta, "metrics": metrics, "export": exported.record(), "latency_ms": latency,
                "champion": champion.ref if champion is not None else None}
    )  # fmt: skip
    gates += matte_threshold_gates(verdict, config)
    reasons = failed_reasons(gates)
    verdict = verdict.model_copy(update={"gates": gates, "reasons": reasons, "passed": not reasons})
    return Validation(verdict, exported, data)
