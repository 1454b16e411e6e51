"""Write a training run's report: report.html (images as files beside it) and report.json.

In: an output folder or fsspec URI, the run's `Verdict` (or its JSON / dict), optionally the SR module
(else loaded from the verdict's checkpoint), Lightning's CSVLogger `metrics.csv`, product photos and
lineage overrides. Out: `(report.html, report.json)` paths/URIs. The page holds: PSNR-Y / SSIM-Y per
benchmark next to the measured bicubic row, the champion and the published anchors; the gates; the
training curves (PNG, matplotlib Agg canvas, no global backend switch); before/after crops on product
photos (bicubic | model | HR, PNG, with their PSNR-Y; a restorer at scale 1: degraded input | model |
clean, the input degraded by the recipe it was trained on); dataset lineage (partitions, manifest hash,
recipe, code version, checkpoint). Images are linked relatively, so the folder can move or be served.
The parts every report shares (style, gates and lineage tables, curves, staging) are training/report/common.py.

Crops: the most detailed `crop_size` square of each photo (largest gradient energy on a coarse grid) is
the HR; its LR is the standard-protocol bicubic downscale (scale 1: the checkpoint's recipe with params
seeded by the photo's name); the scores use pipeline.sr_metrics.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from pipeline.degrade import SeedKey, bicubic_downscale, bicubic_upscale, get_recipe
from pipeline.sr_metrics import PUBLISHED_BICUBIC_Y_PSNR, psnr_y
from training.gates.evaluate import super_resolve
from training.gates.verdict import Verdict
from training.report.common import (
    STYLE,
    curves,
    fmt,
    gates_table,
    lineage_table,
    load_model,
    load_verdict,
    publish,
    staged,
)
from training.report.common import lineage as report_lineage

# Published Y-PSNR (dB): the protocol's bicubic rows, plus x4 Set5 model anchors (FSRCNN, ESPCN,
# EDSR-baseline, SAFMN and SwinIR-light as reported by their papers).
_MODEL_ANCHORS = {
    ("Set5", 4): {
        "FSRCNN": 30.72,
        "ESPCN": 30.52,
        "EDSR-baseline": 32.09,
        "SAFMN": 32.18,
        "SwinIR-light": 32.44,
    }
}
PUBLISHED: dict[tuple[str, int], dict[str, float]] = {
    key: {"bicubic": value, **_MODEL_ANCHORS.get(key, {})} for key, value in PUBLISHED_BICUBIC_Y_PSNR.items()
}


class ReportConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    title: str = "Crisp super-resolution training report"
    crop_size: int = Field(default=192, ge=24)  # HR pixels of each before/after crop
    max_photos: int = Field(default=4, ge=0)


def _metric_rows(verdict: Verdict, scale: int) -> list[dict[str, Any]]:
    rows = []
    for s in verdict.scores:
        rows.append(
            {
                **s.model_dump(),
                "gain_db": s.psnr_y - s.bicubic_psnr_y,
                "published": PUBLISHED.get((s.name, scale), {}),
            }
        )
    return rows


def _detail_crop(image: np.ndarray, size: int, scale: int) -> np.ndarray:
    size = min(size, image.shape[0], image.shape[1]) // scale * scale
    gray = image.astype(np.float32).mean(axis=2)
    energy = np.abs(np.diff(gray, axis=0))[:, :-1] + np.abs(np.diff(gray, axis=1))[:-1]
    step = max(size // 4, 1)
    best, where = -1.0, (0, 0)
    for y in range(0, energy.shape[0] - size + 2, step):
        for x in range(0, energy.shape[1] - size + 2, step):
            total = float(energy[y : y + size - 1, x : x + size - 1].sum())
            if total > best:
                best, where = total, (y, x)
    y, x = where
    return np.ascontiguousarray(image[y : y + size, x : x + size])


def _degrade(hr: np.ndarray, scale: int, recipe: str | None, label: str) -> tuple[np.ndarray, np.ndarray]:
    """(model input, baseline output): the bicubic LR and its bicubic upscale; at scale 1 the recipe's
    degradation (restore_x1_mixed when the checkpoint names none), which is also the baseline."""
    if scale > 1:
        lr = bicubic_downscale(hr, scale)
        return lr, bicubic_upscale(lr, scale)
    degrade = get_recipe(recipe or "restore_x1_mixed")
    degraded = degrade.apply(hr, degrade.sample_params(SeedKey(f"report-{label}")))
    return degraded, degraded


def _crops(
    model: nn.Module,
    photos: Sequence[Path | np.ndarray],
    scale: int,
    config: ReportConfig,
    folder: Path,
    recipe: str | None = None,
):
    (folder / "crops").mkdir(exist_ok=True)
    entries = []
    for number, photo in enumerate(list(photos)[: config.max_photos]):
        label = Path(photo).name if isinstance(photo, str | Path) else f"photo {number}"
        image = (
            np.asarray(Image.open(photo).convert("RGB"))
            if isinstance(photo, str | Path)
            else np.asarray(photo)
        )
        hr = _detail_crop(image, config.crop_size, scale)
        lr, baseline = _degrade(hr, scale, recipe, label)
        restored = super_resolve(model, lr)
        gap = np.full((hr.shape[0], 6, 3), 255, dtype=np.uint8)
        file = f"crops/{number:02d}.png"
        Image.fromarray(np.concatenate([baseline, gap, restored, gap, hr], axis=1)).save(folder / file)
        entries.append(
            {
                "file": file,
                "photo": label,
                "size": list(hr.shape[:2]),
                "bicubic_psnr_y": psnr_y(baseline, hr, scale),  # the baseline's (scale 1: the input's)
                "model_psnr_y": psnr_y(restored, hr, scale),
            }
        )
    return entries


def _html(data: dict[str, Any], config: ReportConfig) -> str:
    e = html.escape
    anchors = sorted({name for row in data["metrics"] for name in row["published"]} - {"bicubic"})
    head = "".join(f"<th>{e(n)} (paper)</th>" for n in anchors)
    rows = "".join(
        f"<tr><td class=l>{e(r['name'])}</td><td>{r['images']}</td><td>{fmt(r['bicubic_psnr_y'])} / {fmt(r['bicubic_ssim_y'], 4)}</td>"
        f"<td>{fmt(r['published'].get('bicubic'), 2)}</td><td><b>{fmt(r['psnr_y'])}</b> / {fmt(r['ssim_y'], 4)}</td>"
        f"<td>{r['gain_db']:+.3f}</td><td>{fmt(r['champion_psnr_y'])}</td>"
        + "".join(f"<td>{fmt(r['published'].get(n), 2)}</td>" for n in anchors)
        + "</tr>"
        for r in data["metrics"]
    )
    curve_figures = "".join(
        f'<figure><img src="{e(f)}" alt="training curves {e(f)}"></figure>' for f in data["curves"]
    )
    baseline, target = ("degraded input", "clean") if data["scale"] == 1 else ("bicubic", "HR")
    crops = "".join(
        f'<figure><img src="{e(c["file"])}" alt="before/after {e(c["photo"])}"><figcaption>{e(c["photo"])}: {baseline} '
        f"{c['bicubic_psnr_y']:.2f} dB | model {c['model_psnr_y']:.2f} dB | {target} (left to right)</figcaption></figure>"
        for c in data["crops"]
    )
    status = '<b class="pass">PASSED</b>' if data["passed"] else '<b class="fail">FAILED</b>'
    reasons = "".join(f"<li>{e(r)}</li>" for r in data["reasons"])
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{e(config.title)}</title><style>{STYLE}</style></head><body>
<h1>{e(config.title)}</h1>
<p>Verdict: {status} &middot; x{data["scale"]} &middot; {e(str(data["lineage"].get("arch", "")))} &middot; {e(data["created_at"])}</p>
<ul class="reasons">{reasons}</ul>
<h2>Benchmarks (PSNR-Y dB / SSIM-Y, border = scale)</h2>
<table id="metrics"><thead><tr><th class=l>set</th><th>images</th><th>{baseline} (measured)</th><th>bicubic (paper)</th>
<th>this model</th><th>gain</th><th>champion</th>{head}</tr></thead><tbody>{rows}</tbody></table>
<h2>Gates</h2>
{gates_table(data["gates"])}
<h2>Training curves</h2>{curve_figures or "<p>No metrics.csv was given.</p>"}
<h2>Before / after on product photos</h2>{crops or "<p>No product photos were given.</p>"}
<h2>Dataset lineage</h2>{lineage_table(data["lineage"])}
</body></html>
"""


def write_report(
    run_dir: str | Path,
    verdict: Verdict | Mapping[str, Any] | str | Path,
    *,
    model: nn.Module | None = None,
    metrics_csv: str | Path | None = None,
    photos: Sequence[str | Path | np.ndarray] = (),
    lineage: Mapping[str, Any] | None = None,
    config: ReportConfig | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> tuple[str, str]:
    """Render the report into `run_dir` (a folder or fsspec URI); return (report.html, report.json)."""
    config = config or ReportConfig()
    verdict = load_verdict(verdict)
    scale = verdict.meta.scale
    with staged(run_dir) as folder:
        if model is None and photos:
            model = load_model(verdict, storage_options)
        data = {
            "title": config.title,
            "passed": verdict.passed,
            "reasons": verdict.reasons,
            "scale": scale,
            "created_at": verdict.created_at.isoformat(),
            "metrics": _metric_rows(verdict, scale),
            "gates": [g.model_dump() for g in verdict.gates],
            "latency_ms": verdict.latency_ms,
            "curves": curves(str(metrics_csv), folder, storage_options) if metrics_csv else [],
            "crops": _crops(model, photos, scale, config, folder, verdict.meta.recipe) if photos else [],
            "lineage": report_lineage(verdict, lineage),
        }
        (folder / "report.html").write_text(_html(data, config))
        (folder / "report.json").write_text(json.dumps(data, indent=1, default=str))
        return publish(folder, run_dir, storage_options)
