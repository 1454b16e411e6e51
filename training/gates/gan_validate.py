"""Measure a GAN-fine-tuned SR model against its L1 twin: what the GAN's gates (training/gates/gan_gates.py) read.

In: the candidate generator and its `CheckpointMeta`, the decoded held-out pairs the SR validator scored
(training/gates/validate.py passes them on), a `GanGateConfig`, the device and the `Storage` the twin is
read from. The twin is `config.twin`, else the checkpoint the candidate was started from (`meta.init_from`),
loaded by `safe_load` like any candidate. Out: (gates, metrics): the `gan/*` measurements of
`verdict.metrics` and the gates on them (a twin that cannot be loaded fails `gan_twin`, and every GAN gate
then reads "not measured").

Per pair, both models super-resolve the LR and, against the HR (border = scale, the SR protocol):
- PSNR-Y (`gan/psnr_y`, `gan/twin_psnr_y`; `gan/psnr_drop_db` = twin - GAN, the means);
- PSNR-Y on the HR's edge / text mask (`gan/edge_psnr_y`, ...; `gan/edge_psnr_drop_db`): pixels whose Sobel
  magnitude on the HR's Y (0-255) reaches `edge_threshold` (a step of about 25 levels across 1 px), dilated by
  one pixel so both sides of a stroke count; tiles with fewer than `MIN_EDGE_PIXELS` are left out;
- NIQE of each output (pipeline/niqe.py; `gan/niqe`, `gan/twin_niqe`, `gan/niqe_gain` = twin - GAN over the
  tiles where both are defined: flat white tiles have none);
- with `quality_model`: the learned quality model's score of each output (pipeline/quality, ONNX Runtime;
  `gan/quality`, `gan/twin_quality`, the means) and `gan/quality_preference`, the share of images the GAN's
  output scores higher (ties count half).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from torch import nn

from pipeline.niqe import niqe_score
from pipeline.sr_metrics import psnr_of_y, y_planes
from training.gates.evaluate import super_resolve
from training.gates.gan_gates import gan_gates
from training.gates.measure import Pair
from training.gates.safe_load import CheckpointRejected, safe_load
from training.gates.verdict import CheckpointMeta, GanGateConfig, GateResult

MIN_EDGE_PIXELS = 64


def edge_mask(hr_y: np.ndarray, threshold: float) -> np.ndarray:
    """Boolean mask of the HR's edges and strokes: Sobel magnitude >= threshold, dilated by 1 px."""
    plane = np.asarray(hr_y, dtype=np.float32)
    magnitude = cv2.magnitude(cv2.Sobel(plane, cv2.CV_32F, 1, 0), cv2.Sobel(plane, cv2.CV_32F, 0, 1))
    mask = (magnitude >= threshold).astype(np.uint8)
    return cv2.dilate(mask, np.ones((3, 3), np.uint8)).astype(bool)


def masked_psnr(sr_y: np.ndarray, hr_y: np.ndarray, mask: np.ndarray) -> float:
    """PSNR in dB (peak 255, capped) over the mask's pixels: the protocol's `psnr_of_y` on them as one row."""
    return psnr_of_y(sr_y[mask][None], hr_y[mask][None])


def _twin(meta: CheckpointMeta, config: GanGateConfig, storage: Any) -> tuple[nn.Module | None, str]:
    """(the twin, its URI) or (None, why not)."""
    uri = config.twin or meta.init_from
    if not uri:
        return (
            None,
            "the candidate names no L1 twin: it was not fine-tuned from a checkpoint (model.init_from)",
        )
    same_store = storage is not None and str(uri).startswith(f"{storage.scheme}://")
    try:
        twin, twin_meta = safe_load(uri, storage_options=storage.options if same_store else None)
    except CheckpointRejected as exc:
        return None, f"the L1 twin cannot be loaded: {exc}"
    if twin_meta.scale != meta.scale:
        return None, f"the L1 twin {uri} is x{twin_meta.scale}, the candidate x{meta.scale}"
    return twin, str(uri)


def _quality_scorer(reference: str, storage: Any, work: Path) -> Any:
    from pipeline.quality import QualityScorer, registry_tracking_uri, resolve_model_file

    tracking = os.environ.get("MLFLOW_TRACKING_URI")
    if str(reference).startswith("models:/") and storage is not None:
        tracking = registry_tracking_uri(storage.root, tracking)
    return QualityScorer(resolve_model_file(reference, work, tracking).path)


def measure_against_twin(
    model: nn.Module,
    meta: CheckpointMeta,
    pairs: dict[str, list[Pair]],
    config: GanGateConfig,
    device: str,
    storage: Any = None,
) -> tuple[list[GateResult], dict[str, float]]:
    """The GAN's gates and their `gan/*` measurements on every pair the SR validator scored."""
    twin, source = _twin(meta, config, storage)
    items = [pair for pairs_of_set in pairs.values() for pair in pairs_of_set]
    if twin is None or not items:
        why = (
            source if twin is None else "no held-out pairs to compare on (set pair_recipe / pair_partitions)"
        )
        twin_gate = GateResult(gate="gan_twin", passed=False, detail=why)
        return [twin_gate, *gan_gates({}, config)], {}
    scale = meta.scale
    rows: dict[str, list[float]] = {
        k: []
        for k in ("psnr", "twin_psnr", "edge", "twin_edge", "niqe", "twin_niqe", "quality", "twin_quality")
    }
    preferences = []
    with tempfile.TemporaryDirectory(prefix="crisp-gan-gates-") as work:
        scorer = _quality_scorer(config.quality_model, storage, Path(work)) if config.quality_model else None
        for module in (model, twin):
            module.to(device).eval()
        for lr, hr in items:
            outputs = [super_resolve(module, lr, device) for module in (model, twin)]
            (sr_y, hr_y), (twin_y, _) = (y_planes(out, hr, border=scale) for out in outputs)
            rows["psnr"].append(psnr_of_y(sr_y, hr_y))
            rows["twin_psnr"].append(psnr_of_y(twin_y, hr_y))
            mask = edge_mask(hr_y, config.edge_threshold)
            if mask.sum() >= MIN_EDGE_PIXELS:
                rows["edge"].append(masked_psnr(sr_y, hr_y, mask))
                rows["twin_edge"].append(masked_psnr(twin_y, hr_y, mask))
            niqes = [niqe_score(out) for out in outputs]
            if all(np.isfinite(niqes)):
                rows["niqe"].append(niqes[0])
                rows["twin_niqe"].append(niqes[1])
            if scorer is not None:
                mine, theirs = (scorer.score_rgb(out) for out in outputs)
                preferences.append(1.0 if mine > theirs else 0.5 if mine == theirs else 0.0)
                rows["quality"].append(mine)
                rows["twin_quality"].append(theirs)
    means = {key: float(np.mean(values)) for key, values in rows.items() if values}
    metrics = {"gan/images": float(len(items)), "gan/niqe_images": float(len(rows["niqe"]))}
    for key, name in (("psnr", "psnr_y"), ("edge", "edge_psnr_y"), ("niqe", "niqe"), ("quality", "quality")):
        if key in means:
            metrics[f"gan/{name}"], metrics[f"gan/twin_{name}"] = means[key], means[f"twin_{key}"]
    if "psnr" in means:
        metrics["gan/psnr_drop_db"] = means["twin_psnr"] - means["psnr"]
    if "edge" in means:
        metrics["gan/edge_psnr_drop_db"] = means["twin_edge"] - means["edge"]
    if "niqe" in means:
        metrics["gan/niqe_gain"] = means["twin_niqe"] - means["niqe"]
    if preferences:
        metrics["gan/quality_preference"] = float(np.mean(preferences))
    twin_gate = GateResult(gate="gan_twin", passed=True, detail=f"compared with the L1 twin {source}")
    return [twin_gate, *gan_gates(metrics, config)], metrics
