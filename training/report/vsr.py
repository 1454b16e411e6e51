"""Render the report of a video-SR version: clip measures vs bicubic, a temporal profile, a frame strip.

In: a video-SR `Verdict` (training/gates/vsr_validate.py; its config names the held-out clips), the `Storage`
holding `pairs/synthetic_clips_x4`, Lightning's metrics.csv and lineage overrides. Out: (report.html,
report.json) under `output` (a folder or fsspec URI), plus `temporal_profile.png`, `frames.png` and the
training curves.

What it shows: the gates table; PSNR-Y / SSIM-Y over every frame and the temporal error (flicker beyond the
true frame-to-frame change, pipeline/video/measure.py) of the model next to bicubic on the same clips, and
per clip; a temporal profile (the middle pixel row of every frame stacked over time, truth | bicubic |
model: flicker shows as horizontal streaks, a steady pan as smooth slanted lines); the middle frame of the
first clips, truth | bicubic | model. The model runs each frame from its own window, as served.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pipeline.degrade.bicubic import bicubic_upscale
from pipeline.video.clips import SCALE
from training.gates.verdict import Verdict, VsrGateConfig
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
from training.report.common import lineage as report_lineage

STRIP_CLIPS = 4


def write_vsr_report(
    output: str | Path, verdict: Verdict | Mapping[str, Any] | str | Path, *, storage: Any,
    metrics_csv: str | Path | None = None, lineage: Mapping[str, Any] | None = None,
    storage_options: Mapping[str, Any] | None = None, **_: Any,
) -> tuple[str, str]:  # fmt: skip
    """Render the report into `output`; return (report.html, report.json)."""
    from training.gates.vsr_validate import clip_measures, held_out_clips, upscale_clip

    verdict = load_verdict(verdict)
    if not isinstance(verdict.config, VsrGateConfig):
        raise ValueError(f"verdict for {verdict.checkpoint} is not a video-SR model's")
    clips = held_out_clips(storage, verdict.config)
    model = load_model(verdict, storage_options)
    outputs = [upscale_clip(model, lr) for _, lr, _ in clips]
    bicubics = [np.stack([bicubic_upscale(f, SCALE) for f in lr]) for _, lr, _ in clips]
    with staged(output) as folder:
        per_clip = [
            {"model": clip_measures([o], [c]), "bicubic": clip_measures([b], [c])}
            for o, b, c in zip(outputs, bicubics, clips, strict=True)
        ]
        _profile(clips[0][0], bicubics[0], outputs[0], folder / "temporal_profile.png")
        _strip(clips[:STRIP_CLIPS], bicubics, outputs, folder / "frames.png")
        data = {
            "title": "Crisp video super-resolution model",
            "passed": verdict.passed,
            "reasons": verdict.reasons,
            "created_at": verdict.created_at.isoformat(),
            "clips": len(clips),
            "split": verdict.config.clip_split,
            "measures": {"model": clip_measures(outputs, clips), "bicubic": clip_measures(bicubics, clips)},
            "per_clip": per_clip,
            "gates": [g.model_dump() for g in verdict.gates],
            "latency_ms": verdict.latency_ms,
            "export": verdict.export,
            "curves": curves(str(metrics_csv), folder, storage_options) if metrics_csv else [],
            "lineage": report_lineage(verdict, lineage),
        }
        (folder / "report.html").write_text(_html(data))
        (folder / "report.json").write_text(json.dumps(json_safe(data), indent=1, default=str))
        return publish(folder, output, storage_options)


def _profile(truth: np.ndarray, bicubic: np.ndarray, model: np.ndarray, path: Path) -> None:
    """The middle row of every frame, stacked over time (rows = frames, each 4 px tall)."""
    middle = truth.shape[1] // 2
    rows = [np.repeat(clip[:, middle], 4, axis=0) for clip in (truth, bicubic, model)]
    gap = np.full((rows[0].shape[0], 4, 3), 255, np.uint8)
    Image.fromarray(np.concatenate([rows[0], gap, rows[1], gap, rows[2]], axis=1)).save(path)


def _strip(clips: list, bicubics: list, outputs: list, path: Path) -> None:
    rows = []
    for (hr, _, _), bicubic, out in zip(clips, bicubics, outputs, strict=False):
        t = len(hr) // 2
        rows.append(np.concatenate([hr[t], bicubic[t], out[t]], axis=1))
    Image.fromarray(np.concatenate(rows, axis=0)).save(path)


def _html(data: dict[str, Any]) -> str:
    e = html.escape
    names = ("psnr_y", "ssim_y", "temporal_error")
    head = "".join(f"<th>{n}</th>" for n in names)
    rows = "".join(
        f"<tr><td class=l>{who}</td>"
        + "".join(f"<td>{fmt(data['measures'][who][n], 4)}</td>" for n in names)
        + "</tr>"
        for who in ("model", "bicubic")
    )
    clips = "".join(
        f"<tr><td class=l>{i}</td>" + "".join(f"<td>{fmt(c[who][n], 3)}</td>" for who in ("model", "bicubic") for n in names)
        + "</tr>"
        for i, c in enumerate(data["per_clip"])
    )  # fmt: skip
    curves_html = "".join(f'<figure><img src="{e(c)}"></figure>' for c in data["curves"])
    status = "passed" if data["passed"] else "FAILED: " + "; ".join(data["reasons"])
    return f"""<!doctype html><html><head><meta charset=utf-8><title>{e(data["title"])}</title>
<style>{STYLE}</style></head><body><h1>{e(data["title"])}</h1>
<p class={"pass" if data["passed"] else "fail"}>Gates {e(status)}</p>
<h2>Gates</h2>{gates_table(data["gates"])}
<h2>Held-out clips ({data["clips"]}, split {e(data["split"])})</h2>
<table id="measures"><thead><tr><th class=l>method</th>{head}</tr></thead><tbody>{rows}</tbody></table>
<p>Every frame of every clip; temporal error: gray levels of flicker beyond the true frame-to-frame change
(0 = as steady as the truth).</p>
<h2>Temporal profile</h2><figure><img src="temporal_profile.png"><figcaption>the middle pixel row of each
frame over time: truth | bicubic | model</figcaption></figure>
<h2>Middle frames</h2><figure><img src="frames.png"><figcaption>truth | bicubic | model</figcaption></figure>
<h2>Per clip</h2><table id="per_clip"><thead><tr><th class=l>clip</th>{"".join(f"<th>{w} {n}</th>" for w in ("model", "bicubic") for n in names)}</tr></thead><tbody>{clips}</tbody></table>
<h2>Training</h2>{curves_html}
<h2>Lineage</h2>{lineage_table(data["lineage"])}</body></html>"""
