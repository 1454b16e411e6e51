"""Write a quality-model version's report: report.html (images as files beside it) and report.json.

In: an output folder or fsspec URI, the version's `Verdict` (training/gates/quality_validate.py; or its JSON /
dict), the `Storage` holding its validation grid (`pairs/quality_grid/<date>`) and the committed
`images/<date>` partitions to rank, optionally the exported ONNX model (a file, or the bytes of
`Validation.exported.data`; else the verdict's checkpoint is exported here with training/serve/export_onnx.py
as validate_quality does), Lightning's CSVLogger `metrics.csv` and lineage overrides.
Out: `(report.html, report.json)` paths/URIs. The page holds: the verdict (headline metrics, the gates:
measured vs threshold); per distortion family the SRCC of the model and of two heuristic baselines,
all computed in this run on the same validation canvases (training/report/quality_data.py documents
the baselines); a predicted-vs-target scatter coloured by family (PNG); the training curves; one
contact sheet per product of its photos sorted by learned score, best (green) to worst (red), each
labelled with its score ("the product ranking"); the lineage; and what the score does not measure.
report.json carries the same numbers: the family table, every scored canvas, each product's ranking
with image ids and scores. Images are linked relatively; matplotlib draws on its Agg canvas only.

Every score here is the data side's (pipeline/quality/scorer.py on ONNX Runtime), so the ranking is
what `crisp quality score` and ingest would say; the verdict's own numbers (eager torch) sit beside.
"""

from __future__ import annotations

import html
import json
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont
from pydantic import BaseModel, ConfigDict, Field

from pipeline.storage import Storage
from training.gates.verdict import QualityGateConfig, Verdict
from training.report.common import (
    STYLE,
    curves,
    fmt,
    gates_table,
    json_safe,
    lineage_table,
    load_verdict,
    publish,
    staged,
)
from training.report.common import lineage as report_lineage
from training.report.quality_data import (
    SCORERS,
    GridScores,
    RankedProduct,
    family_table,
    open_scorer,
    rank_products,
    score_grid,
)

NOTE = (
    "The score (0-5, higher is better) measures technical quality: sharpness, noise, compression, "
    "exposure and colour. It is not aesthetics or product appeal: a sharp, well-exposed photo of an "
    "unattractive product scores high. It was learned from synthetic distortions of product photos "
    "(pipeline/distort), so real defects unlike those families may be scored less reliably."
)
BENCH_NOTE = "BRISQUE and NIQE of the same canvases are in bench/results/quality.json."
LABELS = {
    "model": "this model (ONNX)",
    "log_sharpness": "log Laplacian sharpness",
    "heuristic": "ingest heuristic",
}
BEST, WORST, OTHER = (23, 107, 28), (176, 0, 32), (190, 190, 190)


class QualityReportConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    title: str = "Crisp quality model report"
    max_groups: int | None = Field(default=None, ge=1)  # grid references scored; None: the verdict's
    products: int = Field(default=12, ge=0)  # contact sheets (the products with the most photos)
    photos_per_product: int = Field(default=8, ge=1)  # by image_id; 8 x 160 px fits the page
    thumb_side: int = Field(default=160, ge=32)  # thumbnail height in px


def _scatter(grid: GridScores, folder: Path) -> str:
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.2, 5.6), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    families = sorted({s["family"] for s in grid.samples})
    palette = colormaps["tab20"]
    order = [*range(0, 20, 2), *range(1, 20, 2)]  # the strong shades first: neighbours differ
    for number, family in enumerate(families):
        mine = [s for s in grid.samples if s["family"] == family]
        colour = "black" if family == "pristine" else palette(order[number % 20])
        axes.scatter([s["target"] for s in mine], [s["model"] for s in mine], s=14, alpha=0.7,
                     color=colour, label=f"{family} ({len(mine)})")  # fmt: skip
    axes.plot([0, 5], [0, 5], ls="--", lw=1, color="grey")
    axes.set(xlim=(-0.1, 5.1), ylim=(-0.1, 5.1), xlabel="target (grid)", ylabel="predicted (ONNX)")
    axes.set_title(f"{len(grid.samples)} {grid.split} canvases, SRCC {grid.metrics['model']['srcc']:.3f}")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    figure.tight_layout()
    figure.savefig(folder / "scatter.png")
    return "scatter.png"


def _badge(number: int, count: int) -> tuple[tuple[int, int, int], str]:
    if count > 1 and number == 0:
        return BEST, "BEST"
    if count > 1 and number == count - 1:
        return WORST, "WORST"
    return OTHER, ""


def _contact_sheet(product: RankedProduct, path: Path, thumb: int) -> None:
    """The product's thumbnails left to right, best first: a green frame and BEST under the first, red
    and WORST under the last, every one captioned with its rank and score."""
    frame, pad, line = 6, 8, 19
    font = ImageFont.load_default(size=15)
    photos, thumbs = product.record["photos"], product.thumbnails
    labels = [f"#{entry['rank']}  {entry['score']:.3f}" for entry in photos]
    cells = [
        max(t.width + 2 * frame, int(font.getlength(text)) + 2)
        for t, text in zip(thumbs, labels, strict=True)
    ]
    sheet = Image.new(
        "RGB", (sum(cells) + pad * (len(cells) + 1), thumb + 2 * frame + 2 * line + 2 * pad), "white"
    )
    draw = ImageDraw.Draw(sheet)
    x = pad
    for number, (text, image, cell) in enumerate(zip(labels, thumbs, cells, strict=True)):
        colour, word = _badge(number, len(thumbs))
        draw.rectangle(
            [x, pad, x + image.width + 2 * frame - 1, pad + image.height + 2 * frame - 1], fill=colour
        )
        sheet.paste(image, (x + frame, pad + frame))
        below = pad + image.height + 2 * frame + 3
        draw.text((x, below), text, fill=(40, 40, 40), font=font)
        draw.text((x, below + line), word, fill=colour, font=font)
        x += cell + pad
    sheet.save(path)


def _sheets(ranked: list[RankedProduct], folder: Path, thumb: int) -> list[dict[str, Any]]:
    (folder / "ranking").mkdir(exist_ok=True)
    out = []
    for number, product in enumerate(ranked):
        record = {**product.record, "sheet": None}
        if product.thumbnails:
            record["sheet"] = f"ranking/{number:02d}.png"
            _contact_sheet(product, folder / record["sheet"], thumb)
        out.append(record)
    return out


def _html(data: dict[str, Any], title: str) -> str:
    e = html.escape
    headline = (
        "".join(
            f"<tr><th class=l>{e(k)}</th><td>{fmt(int(v) if k.endswith('samples') else v, 4)}</td></tr>"
            for k, v in data["metrics"].items()
            if "srcc/" not in k  # per family: the table below
        )
        + f"<tr><th class=l>latency_ms (ONNX, 512 px)</th><td>{fmt(data['latency_ms'], 2)}</td></tr>"
    )
    families = "".join(
        f"<tr><td class=l>{e(r['family'])}</td><td>{r['samples']}</td><td><b>{fmt(r['model_srcc'])}</b></td>"
        f"<td>{fmt(r['verdict_srcc'])}</td><td>{fmt(r['champion_srcc'])}</td><td>{fmt(r['log_sharpness_srcc'])}</td><td>{fmt(r['heuristic_srcc'])}</td></tr>"
        for r in data["families"]
    )
    scorers = "".join(
        f"<tr><td class=l>{e(LABELS[n])}</td>"
        + "".join(f"<td>{fmt(m.get(k))}</td>" for k in ("srcc", "plcc", "krcc", "pair_accuracy"))
        + "</tr>"
        for n, m in data["scorers"].items()
    )
    figures = "".join(
        f'<figure><img src="{e(f)}" alt="training curves {e(f)}"></figure>' for f in data["curves"]
    )
    sheets = ""
    for p in data["ranking"]:
        order = " &middot; ".join(
            f"#{x['rank']} {e(x['image_id'][:12])} {x['score']:.3f}" for x in p["photos"]
        )
        failed = f" ({len(p['failed'])} did not decode)" if p["failed"] else ""
        image = (
            f'<img src="{e(p["sheet"])}" alt="photos of {e(p["product_id"])}, best to worst">'
            if p["sheet"]
            else ""
        )
        sheets += f"<figure>{image}<figcaption><b>{e(p['product_id'])}</b>, best to worst: {order}{failed}</figcaption></figure>"
    status = '<b class="pass">PASSED</b>' if data["passed"] else '<b class="fail">FAILED</b>'
    grid = data["grid"]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title><style>{STYLE}</style></head><body>
<h1>{e(title)}</h1>
<p>Verdict: {status} &middot; {e(str(data["lineage"].get("arch", "")))} &middot; {e(data["created_at"])}</p>
<ul class="reasons">{"".join(f"<li>{e(r)}</li>" for r in data["reasons"])}</ul>
<p class="note"><b>What the score means.</b> {e(NOTE)}</p>
<h2>Headline metrics (verdict)</h2><table id="headline"><tbody>{headline}</tbody></table>
<h2>Gates</h2>
{gates_table(data["gates"])}
<h2>Per distortion family (SRCC vs target)</h2>
<p>{grid["samples"]} canvases of {grid["groups"]} {e(grid["split"])} references ({e(", ".join(grid["partitions"]))}), long side
{grid["canvas_long_side"]} px, scored in this run: the model by ONNX Runtime, the baselines from pipeline/clean/quality.py on the
same canvases ("all": every canvas, pristine ones included). Ingest heuristic: the mean z-score of +log sharpness, -log noise sigma, -log blockiness, +contrast,
+dark score, +light score. {e(BENCH_NOTE)}</p>
<table id="families"><thead><tr><th class=l>family</th><th>canvases</th><th>this model (ONNX)</th><th>verdict (torch)</th>
<th>champion (verdict)</th><th>log Laplacian sharpness</th><th>ingest heuristic</th></tr></thead><tbody>{families}</tbody></table>
<table id="scorers"><thead><tr><th class=l>scorer</th><th>SRCC</th><th>PLCC</th><th>KRCC</th><th>pair accuracy</th></tr></thead>
<tbody>{scorers}</tbody></table>
<h2>Predicted vs target</h2><figure><img src="{e(data["scatter"])}" alt="predicted vs target by family"></figure>
<h2>Training curves</h2>{figures or "<p>No metrics.csv was given.</p>"}
<h2>Product ranking (learned score, best to worst)</h2>{sheets or "<p>No image partitions were given.</p>"}
<h2>Lineage</h2>{lineage_table(data["lineage"])}
</body></html>
"""


def write_quality_report(
    output: str | Path,
    verdict: Verdict | Mapping[str, Any] | str | Path,
    *,
    storage: Storage,
    onnx: str | Path | bytes | None = None,
    grid_partitions: Sequence[str] | None = None,
    grid_split: str | None = None,
    image_partitions: Sequence[str] = (),
    metrics_csv: str | Path | None = None,
    lineage: Mapping[str, Any] | None = None,
    config: QualityReportConfig | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> tuple[str, str]:
    """Render the report into `output` (a folder or fsspec URI); return (report.html, report.json).
    The grid partitions, split and max_groups default to the verdict's (the canvases it was measured on);
    `storage_options` are the output's (and those of an s3:// metrics.csv or checkpoint)."""
    config = config or QualityReportConfig()
    verdict = load_verdict(verdict)
    if not isinstance(verdict.config, QualityGateConfig):
        raise ValueError(f"verdict for {verdict.checkpoint} is not a quality model's")
    measured = verdict.config
    grid_config = measured.model_copy(update={
        "grid_partitions": list(grid_partitions if grid_partitions is not None else measured.grid_partitions),
        "grid_split": grid_split or measured.grid_split,
        "max_groups": config.max_groups or measured.max_groups,
    })  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="crisp-quality-onnx-") as tmp, staged(output) as folder:
        scorer, source = open_scorer(onnx, verdict, storage, grid_config, storage_options, Path(tmp))
        grid = score_grid(storage, scorer, grid_config)
        ranked, orphans = rank_products(storage, image_partitions, scorer, config.products,
                                        config.photos_per_product, config.thumb_side)  # fmt: skip
        extra = {"grid_partitions": grid.partitions, "grid_manifest_hash": grid.manifest_hash,
                 "image_partitions": [f"images/{p}" for p in image_partitions], "onnx": source}  # fmt: skip
        data = {
            "title": config.title,
            "passed": verdict.passed,
            "reasons": verdict.reasons,
            "created_at": verdict.created_at.isoformat(),
            "note": NOTE,
            "metrics": verdict.metrics,
            "gates": [g.model_dump() for g in verdict.gates],
            "latency_ms": verdict.latency_ms,
            "export": verdict.export,
            "grid": {
                "partitions": grid.partitions,
                "split": grid.split,
                "groups": grid.groups,
                "samples": len(grid.samples),
                "canvas_long_side": grid.canvas_long_side,
            },
            "families": family_table(grid, verdict.metrics),
            "scorers": {name: grid.metrics[name] for name in SCORERS},
            "baselines_elsewhere": BENCH_NOTE,
            "scatter": _scatter(grid, folder),
            "curves": curves(str(metrics_csv), folder, storage_options) if metrics_csv else [],
            "ranking": _sheets(ranked, folder, config.thumb_side),
            "photos_without_product_id": orphans,
            "samples": grid.samples,
            "lineage": report_lineage(verdict, {**extra, **dict(lineage or {})}),
        }
        (folder / "report.html").write_text(_html(data, config.title))
        (folder / "report.json").write_text(json.dumps(json_safe(data), indent=1, default=str))
        return publish(folder, output, storage_options)
