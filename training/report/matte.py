"""Render the report of a matte-model version: metrics vs a baseline, per background, hard cases, overlays.

In: a matte `Verdict` (training/gates/matte_validate.py; its config names the held-out composites), the
`Storage` holding `pairs/matte_composites`, optionally the exported ONNX bytes (else the verdict's
checkpoint is exported again), Lightning's metrics.csv and lineage overrides. Out: (report.html,
report.json) under `output` (a folder or fsspec URI), plus `hard_cases.png` and the training curves.

What it shows: the gates table; the model's measures (pipeline/matte/measure.py) on the held-out
composites next to the white-threshold baseline measured here on the same composites (alpha = 1 where
some channel is below 255 - 14: what a studio-white rule gives, and what fails on a cluttered scene);
IoU per background kind; a contact sheet of the `hard_cases` composites with the lowest IoU: composite,
true alpha, predicted alpha and the cut-out over a checkerboard; lineage. The model is run through
pipeline/matte/predict.py, the path serving takes, at each composite's own size.
"""

from __future__ import annotations

import html
import json
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pipeline.matte.measure import NAMES, matte_measures, mean_measures
from training.gates.verdict import MatteGateConfig, Verdict
from training.report.common import (
    STYLE,
    curves,
    fmt,
    gates_table,
    json_safe,
    lineage_table,
    load_model,
    load_verdict,
    publish,
    staged,
)
from training.report.common import (
    lineage as report_lineage,
)

WHITE_TOLERANCE = 14  # the threshold baseline: pipeline/matte/estimate.py's default white
HARD_CASES = 6


def white_threshold(image: np.ndarray) -> np.ndarray:
    """The baseline matte: 1 wherever the pixel is not studio white."""
    return (image.min(axis=2) < 255 - WHITE_TOLERANCE).astype(np.float32)


def _checker(height: int, width: int) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width]
    return np.where(((yy // 8 + xx // 8) % 2)[..., None] == 0, 200, 255).astype(np.float64)


def _sheet(cases: list[dict[str, Any]], path: Path) -> None:
    rows = []
    for case in cases:
        image, true, pred = case["image"], case["true"], case["pred"]
        h, w = true.shape
        over = pred[..., None] * image + (1 - pred[..., None]) * _checker(h, w)
        grey = lambda a: np.repeat((a * 255)[..., None], 3, axis=2)  # noqa: E731
        rows.append(np.concatenate([image, grey(true), grey(pred), over], axis=1))
    Image.fromarray(np.clip(np.rint(np.concatenate(rows, axis=0)), 0, 255).astype(np.uint8)).save(path)


def _predictor(onnx: bytes | None, verdict: Verdict, folder: Path, options: Mapping[str, Any] | None):
    from pipeline.matte.predict import MattePredictor
    from training.serve.export_onnx import export_onnx

    if onnx is None:
        config = verdict.config
        exported = export_onnx(load_model(verdict, options), config.canvas_long_side, config.export_atol,
                               output="alpha")  # fmt: skip
        if exported.data is None:
            raise ValueError(f"the matte model cannot be exported to ONNX: {exported.error}")
        onnx = exported.data
    path = folder / "model.onnx"
    path.write_bytes(onnx)
    return MattePredictor(path, threads=1)


def write_matte_report(
    output: str | Path, verdict: Verdict | Mapping[str, Any] | str | Path, *, storage: Any,
    onnx: bytes | None = None, metrics_csv: str | Path | None = None, lineage: Mapping[str, Any] | None = None,
    storage_options: Mapping[str, Any] | None = None, **_: Any,
) -> tuple[str, str]:  # fmt: skip
    """Render the report into `output`; return (report.html, report.json)."""
    from training.gates.matte_validate import held_out

    verdict = load_verdict(verdict)
    if not isinstance(verdict.config, MatteGateConfig):
        raise ValueError(f"verdict for {verdict.checkpoint} is not a matte model's")
    samples, kinds = held_out(storage, verdict.config)
    with tempfile.TemporaryDirectory(prefix="crisp-matte-report-") as tmp, staged(output) as folder:
        predictor = _predictor(onnx, verdict, Path(tmp), storage_options)
        model, baseline, cases = [], [], []
        for sample, kind in zip(samples, kinds, strict=True):
            true = sample["alpha"].astype(np.float32) / 255.0
            pred = predictor.canvas_alpha(sample["image"])
            model.append(matte_measures(pred, true))
            baseline.append(matte_measures(white_threshold(sample["image"]), true))
            cases.append({"image": sample["image"].astype(np.float64), "true": true, "pred": pred, "kind": kind,
                          "iou": model[-1]["iou"]})  # fmt: skip
        hard = sorted(cases, key=lambda c: c["iou"])[:HARD_CASES]
        _sheet(hard, folder / "hard_cases.png")
        per_kind = {
            kind: {"model": mean_measures([m for m, k in zip(model, kinds, strict=True) if k == kind])["iou"],
                   "white_threshold": mean_measures([m for m, k in zip(baseline, kinds, strict=True) if k == kind])["iou"],
                   "samples": kinds.count(kind)}
            for kind in sorted(set(kinds))
        }  # fmt: skip
        data = {
            "title": "Crisp matte model",
            "passed": verdict.passed,
            "reasons": verdict.reasons,
            "created_at": verdict.created_at.isoformat(),
            "samples": len(samples),
            "split": verdict.config.sample_split,
            "measures": {"model": mean_measures(model), "white_threshold": mean_measures(baseline)},
            "per_background": per_kind,
            "hard_cases": [{"kind": c["kind"], "iou": c["iou"]} for c in hard],
            "gates": [g.model_dump() for g in verdict.gates],
            "latency_ms": verdict.latency_ms,
            "export": verdict.export,
            "curves": curves(str(metrics_csv), folder, storage_options) if metrics_csv else [],
            "lineage": report_lineage(verdict, lineage),
        }
        (folder / "report.html").write_text(_html(data))
        (folder / "report.json").write_text(json.dumps(json_safe(data), indent=1, default=str))
        return publish(folder, output, storage_options)


def _html(data: dict[str, Any]) -> str:
    e = html.escape
    measures = data["measures"]
    head = "".join(f"<th>{e(n)}</th>" for n in NAMES)
    rows = "".join(
        f"<tr><td class=l>{e(who)}</td>"
        + "".join(f"<td>{fmt(measures[who].get(n), 4)}</td>" for n in NAMES)
        + "</tr>"
        for who in ("model", "white_threshold")
    )
    kinds = "".join(
        f"<tr><td class=l>{e(k)}</td><td>{v['samples']}</td><td>{fmt(v['model'], 4)}</td>"
        f"<td>{fmt(v['white_threshold'], 4)}</td></tr>"
        for k, v in data["per_background"].items()
    )
    curves_html = "".join(f'<figure><img src="{e(c)}"></figure>' for c in data["curves"])
    status = "passed" if data["passed"] else "FAILED: " + "; ".join(data["reasons"])
    return f"""<!doctype html><html><head><meta charset=utf-8><title>{e(data["title"])}</title>
<style>{STYLE}</style></head><body><h1>{e(data["title"])}</h1>
<p class={"pass" if data["passed"] else "fail"}>Gates {e(status)}</p>
<h2>Gates</h2>{gates_table(data["gates"])}
<h2>Held-out composites ({data["samples"]}, split {e(data["split"])})</h2>
<table id="measures"><thead><tr><th class=l>matte</th>{head}</tr></thead><tbody>{rows}</tbody></table>
<p>white_threshold: alpha 1 wherever a channel is below {255 - WHITE_TOLERANCE}, measured here on the same composites.
bench/bench_matte.py compares GrabCut and u2netp as well.</p>
<h2>IoU per background</h2><table id="per_background"><thead><tr><th class=l>background</th><th>samples</th>
<th>model</th><th>white_threshold</th></tr></thead><tbody>{kinds}</tbody></table>
<h2>Hard cases</h2><figure><img src="hard_cases.png"><figcaption>lowest IoU first: composite | true alpha |
predicted alpha | cut-out over a checkerboard</figcaption></figure>
<h2>Training</h2>{curves_html}
<h2>Lineage</h2>{lineage_table(data["lineage"])}</body></html>"""
