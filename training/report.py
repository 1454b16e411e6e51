"""Write a training run's report: report.html (images as files beside it) and report.json.

In: an output folder or fsspec URI, the run's `Verdict` (or its JSON / dict), optionally the SR module
(else loaded from the verdict's checkpoint), Lightning's CSVLogger `metrics.csv`, product photos and
lineage overrides. Out: `(report.html, report.json)` paths/URIs. The page holds: PSNR-Y / SSIM-Y per
benchmark next to the measured bicubic row, the champion and the published anchors; the gates; the
training curves (PNG, matplotlib Agg canvas, no global backend switch); before/after crops on product
photos (bicubic | model | HR, PNG, with their PSNR-Y); dataset lineage (partitions, manifest hash,
recipe, code version, checkpoint). Images are linked relatively, so the folder can move or be served.

Crops: the most detailed `crop_size` square of each photo (largest gradient energy on a coarse grid) is
the HR; its LR is the standard-protocol bicubic downscale; the scores use pipeline.sr_metrics.
"""

from __future__ import annotations

import html
import json
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from pipeline.degrade import bicubic_downscale, bicubic_upscale
from pipeline.sr_metrics import PUBLISHED_BICUBIC_Y_PSNR, psnr_y
from training.evaluate import super_resolve
from training.verdict import Verdict

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

_STYLE = """body{font-family:system-ui,sans-serif;margin:2rem;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #ccc;padding:.3rem .6rem;text-align:right}
th{background:#f3f3f3}td.l,th.l{text-align:left}.pass{color:#176b1c}.fail{color:#b00020}
figure{margin:1rem 0}img{max-width:100%;border:1px solid #ddd}figcaption{font-size:.9rem;color:#555}"""


class ReportConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    title: str = "Crisp super-resolution training report"
    crop_size: int = Field(default=192, ge=24)  # HR pixels of each before/after crop
    max_photos: int = Field(default=4, ge=0)


def _verdict(source: Verdict | Mapping[str, Any] | str | Path) -> Verdict:
    if isinstance(source, Verdict):
        return source
    if isinstance(source, Mapping):
        return Verdict.model_validate(source)
    return Verdict.model_validate_json(Path(source).read_text())


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


def _curves(metrics_csv: str, folder: Path, options: Mapping[str, Any] | None) -> list[str]:
    """One PNG per metric family (the part before the first '/': train, val, ...), one panel per metric
    kind (the part after the last '/': loss, psnr_y, ...) with a line per logged name, against step."""
    import pandas as pd
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    remote = "://" in metrics_csv and not metrics_csv.startswith("file://")
    frame = pd.read_csv(metrics_csv, storage_options=dict(options or {}) if remote else None)
    x_axis = "step" if "step" in frame else frame.columns[0]
    columns = [c for c in frame.columns if c not in ("epoch", "step") and frame[c].notna().any()]
    families: dict[str, dict[str, list[str]]] = {}
    for column in columns:
        if not column.endswith("/images"):  # sample counters, not curves
            families.setdefault(column.split("/")[0], {}).setdefault(column.split("/")[-1], []).append(column)
    files = []
    for family, kinds in sorted(families.items()):
        figure = Figure(figsize=(6.4, 1.2 + 2.2 * len(kinds)), dpi=100)
        FigureCanvasAgg(figure)
        for row, (kind, names) in enumerate(sorted(kinds.items()), start=1):
            axes = figure.add_subplot(len(kinds), 1, row)
            for name in names:
                series = frame[[x_axis, name]].dropna()
                axes.plot(series[x_axis], series[name], marker="." if len(series) < 30 else None, label=name)
            axes.set_ylabel(kind)
            axes.grid(alpha=0.3)
            axes.legend(fontsize=8)
        axes.set_xlabel(x_axis)
        figure.suptitle(family)
        figure.tight_layout()
        file = f"curves_{family.replace(' ', '_')}.png"
        figure.savefig(folder / file)
        files.append(file)
    return files


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


def _crops(
    model: nn.Module, photos: Sequence[Path | np.ndarray], scale: int, config: ReportConfig, folder: Path
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
        lr = bicubic_downscale(hr, scale)
        bicubic, restored = bicubic_upscale(lr, scale), super_resolve(model, lr)
        gap = np.full((hr.shape[0], 6, 3), 255, dtype=np.uint8)
        file = f"crops/{number:02d}.png"
        Image.fromarray(np.concatenate([bicubic, gap, restored, gap, hr], axis=1)).save(folder / file)
        entries.append(
            {
                "file": file,
                "photo": label,
                "size": list(hr.shape[:2]),
                "bicubic_psnr_y": psnr_y(bicubic, hr, scale),
                "model_psnr_y": psnr_y(restored, hr, scale),
            }
        )
    return entries


def _lineage(verdict: Verdict, overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    meta = verdict.meta
    lineage: dict[str, Any] = {
        "checkpoint": verdict.checkpoint,
        "checkpoint_sha256": verdict.checkpoint_sha256,
    }
    if meta is not None:
        lineage.update(
            arch=meta.arch,
            scale=meta.scale,
            arch_kwargs=meta.arch_kwargs,
            weights=meta.weights,
            recipe=meta.recipe,
            pair_partitions=meta.pair_partitions,
            data_manifest_hash=meta.data_manifest_hash,
            schema_version=meta.schema_version,
            code_version=meta.code_version,
        )
    return {**lineage, **dict(overrides or {})}


def _fmt(value: Any, digits: int = 3, style: str = "f") -> str:
    if isinstance(value, float):
        return f"{value:.{digits}{style}}"
    return "—" if value is None else html.escape(str(value))


def _html(data: dict[str, Any], config: ReportConfig) -> str:
    e = html.escape
    anchors = sorted({name for row in data["metrics"] for name in row["published"]} - {"bicubic"})
    head = "".join(f"<th>{e(n)} (paper)</th>" for n in anchors)
    rows = "".join(
        f"<tr><td class=l>{e(r['name'])}</td><td>{r['images']}</td><td>{_fmt(r['bicubic_psnr_y'])} / {_fmt(r['bicubic_ssim_y'], 4)}</td>"
        f"<td>{_fmt(r['published'].get('bicubic'), 2)}</td><td><b>{_fmt(r['psnr_y'])}</b> / {_fmt(r['ssim_y'], 4)}</td>"
        f"<td>{r['gain_db']:+.3f}</td><td>{_fmt(r['champion_psnr_y'])}</td>"
        + "".join(f"<td>{_fmt(r['published'].get(n), 2)}</td>" for n in anchors)
        + "</tr>"
        for r in data["metrics"]
    )
    gates = "".join(
        f"<tr><td class=l>{e(g['gate'])}</td><td class={'pass' if g['passed'] else 'fail'}>{'pass' if g['passed'] else 'FAIL'}</td>"
        f"<td>{_fmt(g['measured'], 4, 'g')}</td><td>{_fmt(g['threshold'], 4, 'g')}</td><td class=l>{e(g['detail'])}</td></tr>"
        for g in data["gates"]
    )
    curves = "".join(
        f'<figure><img src="{e(f)}" alt="training curves {e(f)}"></figure>' for f in data["curves"]
    )
    crops = "".join(
        f'<figure><img src="{e(c["file"])}" alt="before/after {e(c["photo"])}"><figcaption>{e(c["photo"])}: bicubic '
        f"{c['bicubic_psnr_y']:.2f} dB | model {c['model_psnr_y']:.2f} dB | HR (left to right)</figcaption></figure>"
        for c in data["crops"]
    )
    lineage = "".join(
        f"<tr><th class=l>{e(k)}</th><td class=l>{e(json.dumps(v))}</td></tr>"
        for k, v in data["lineage"].items()
    )
    status = '<b class="pass">PASSED</b>' if data["passed"] else '<b class="fail">FAILED</b>'
    reasons = "".join(f"<li>{e(r)}</li>" for r in data["reasons"])
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{e(config.title)}</title><style>{_STYLE}</style></head><body>
<h1>{e(config.title)}</h1>
<p>Verdict: {status} &middot; x{data["scale"]} &middot; {e(str(data["lineage"].get("arch", "")))} &middot; {e(data["created_at"])}</p>
<ul class="reasons">{reasons}</ul>
<h2>Benchmarks (PSNR-Y dB / SSIM-Y, border = scale)</h2>
<table id="metrics"><thead><tr><th class=l>set</th><th>images</th><th>bicubic (measured)</th><th>bicubic (paper)</th>
<th>this model</th><th>gain</th><th>champion</th>{head}</tr></thead><tbody>{rows}</tbody></table>
<h2>Gates</h2>
<table id="gates"><thead><tr><th class=l>gate</th><th>result</th><th>measured</th><th>threshold</th><th class=l>detail</th></tr></thead>
<tbody>{gates}</tbody></table>
<h2>Training curves</h2>{curves or "<p>No metrics.csv was given.</p>"}
<h2>Before / after on product photos</h2>{crops or "<p>No product photos were given.</p>"}
<h2>Dataset lineage</h2><table id="lineage"><tbody>{lineage}</tbody></table>
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
    verdict = _verdict(verdict)
    if verdict.meta is None:
        raise ValueError(
            f"verdict for {verdict.checkpoint} has no model meta (it was rejected): {verdict.reasons}"
        )
    scale = verdict.meta.scale
    remote = "://" in str(run_dir) and not str(run_dir).startswith("file://")
    with tempfile.TemporaryDirectory(prefix="crisp-report-") as tmp:
        folder = Path(tmp) if remote else Path(str(run_dir).removeprefix("file://"))
        folder.mkdir(parents=True, exist_ok=True)
        if model is None and photos:
            from training.safe_load import safe_load

            # the checkpoint sits under the run's output: on S3 it needs the same options (endpoint, keys)
            remote_checkpoint = str(verdict.checkpoint).startswith("s3://")
            model, _ = safe_load(
                verdict.checkpoint, storage_options=storage_options if remote_checkpoint else None
            )
        data = {
            "title": config.title,
            "passed": verdict.passed,
            "reasons": verdict.reasons,
            "scale": scale,
            "created_at": verdict.created_at.isoformat(),
            "metrics": _metric_rows(verdict, scale),
            "gates": [g.model_dump() for g in verdict.gates],
            "latency_ms": verdict.latency_ms,
            "curves": _curves(str(metrics_csv), folder, storage_options) if metrics_csv else [],
            "crops": _crops(model, photos, scale, config, folder) if photos else [],
            "lineage": _lineage(verdict, lineage),
        }
        (folder / "report.html").write_text(_html(data, config))
        (folder / "report.json").write_text(json.dumps(data, indent=1, default=str))
        if not remote:
            return str(folder / "report.html"), str(folder / "report.json")
        from pipeline.storage import Storage

        target = Storage(str(run_dir), dict(storage_options or {}))
        for file in sorted(p for p in folder.rglob("*") if p.is_file()):
            target.upload(str(file), file.relative_to(folder).as_posix())
        return target.uri("report.html"), target.uri("report.json")
