"""What every training report shares: the page style, the verdict and lineage records, the gates table,
the training curves and the folder the files are written to.

In: a `Verdict` (or its JSON file or dict), Lightning's CSVLogger `metrics.csv` (a path or fsspec URI),
an output folder or fsspec URI. Out: `load_verdict` -> Verdict; `load_model` -> its checkpoint's module; `json_safe` -> the value without NaN; `lineage` -> the dict of the lineage
table (checkpoint identity, model meta: arch, recipe, partitions, manifest hash, code version; overrides
on top); `gates_table` -> the HTML of the gates table; `curves` -> the PNG file names it wrote (one per
metric family, matplotlib's Agg canvas, no global backend switch); `staged(output)` -> a local folder to
write into; `publish(folder, output)` -> the (report.html, report.json) paths or URIs, uploading the
folder's files when `output` is remote (s3://, memory://, ...). Used by training/report/sr.py (SR) and
training/report/quality.py.
"""

from __future__ import annotations

import html
import json
import math
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from training.gates.verdict import Verdict

STYLE = """body{font-family:system-ui,sans-serif;margin:2rem;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #ccc;padding:.3rem .6rem;text-align:right}
th{background:#f3f3f3}td.l,th.l{text-align:left}.pass{color:#176b1c}.fail{color:#b00020}
figure{margin:1rem 0}img{max-width:100%;border:1px solid #ddd}figcaption{font-size:.9rem;color:#555}"""


def load_verdict(source: Verdict | Mapping[str, Any] | str | Path) -> Verdict:
    """A Verdict from itself, its dict or its JSON file; ValueError for a rejected one (no model meta:
    there is no model to report on)."""
    if isinstance(source, Verdict):
        verdict = source
    elif isinstance(source, Mapping):
        verdict = Verdict.model_validate(source)
    else:
        verdict = Verdict.model_validate_json(Path(source).read_text())
    if verdict.meta is None:
        raise ValueError(
            f"verdict for {verdict.checkpoint} has no model meta (it was rejected): {verdict.reasons}"
        )
    return verdict


def load_model(verdict: Verdict, storage_options: Mapping[str, Any] | None = None) -> Any:
    """The eval-mode module of the verdict's checkpoint (training/gates/safe_load.py). The checkpoint sits
    under the run's output: on S3 it needs the report's storage options (endpoint, keys)."""
    from training.gates.safe_load import safe_load

    remote_checkpoint = str(verdict.checkpoint).startswith("s3://")
    model, _ = safe_load(verdict.checkpoint, storage_options=storage_options if remote_checkpoint else None)
    return model


def is_remote(uri: str | Path) -> bool:
    """True for an fsspec URI other than file:// (the report is staged locally and uploaded)."""
    return "://" in str(uri) and not str(uri).startswith("file://")


def fmt(value: Any, digits: int = 3, style: str = "f") -> str:
    """A table cell: floats with `digits`, None as a dash, anything else escaped."""
    if isinstance(value, float):
        return f"{value:.{digits}{style}}"
    return "—" if value is None else html.escape(str(value))


def json_safe(value: Any) -> Any:
    """`value` with NaN / infinite floats as None (strict JSON: browsers' JSON.parse refuses NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def lineage(verdict: Verdict, overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """The lineage table: the checkpoint, what its meta says it was trained on, then `overrides`."""
    meta = verdict.meta
    found: dict[str, Any] = {
        "checkpoint": verdict.checkpoint,
        "checkpoint_sha256": verdict.checkpoint_sha256,
    }
    if meta is not None:
        found.update(
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
    return {**found, **dict(overrides or {})}


def gates_table(gates: Sequence[Mapping[str, Any]]) -> str:
    """<table id="gates">: gate, pass/FAIL, measured, threshold, detail (GateResult dicts)."""
    e = html.escape
    rows = "".join(
        f"<tr><td class=l>{e(g['gate'])}</td><td class={'pass' if g['passed'] else 'fail'}>{'pass' if g['passed'] else 'FAIL'}</td>"
        f"<td>{fmt(g['measured'], 4, 'g')}</td><td>{fmt(g['threshold'], 4, 'g')}</td><td class=l>{e(g['detail'])}</td></tr>"
        for g in gates
    )
    return (
        '<table id="gates"><thead><tr><th class=l>gate</th><th>result</th><th>measured</th><th>threshold</th>'
        f"<th class=l>detail</th></tr></thead>\n<tbody>{rows}</tbody></table>"
    )


def lineage_table(found: Mapping[str, Any]) -> str:
    """<table id="lineage">: one row per lineage key, the value as JSON."""
    rows = "".join(
        f"<tr><th class=l>{html.escape(k)}</th><td class=l>{html.escape(json.dumps(v, default=str))}</td></tr>"
        for k, v in found.items()
    )
    return f'<table id="lineage"><tbody>{rows}</tbody></table>'


def curves(metrics_csv: str, folder: Path, options: Mapping[str, Any] | None) -> list[str]:
    """One PNG per metric family (the part before the first '/': train, val, ...), one panel per metric
    kind (the part after the last '/': loss, psnr_y, ...) with a line per logged name, against step."""
    import pandas as pd
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    frame = pd.read_csv(metrics_csv, storage_options=dict(options or {}) if is_remote(metrics_csv) else None)
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


@contextmanager
def staged(output: str | Path) -> Iterator[Path]:
    """The local folder to write the report into: `output` itself when local, else a temporary one."""
    with tempfile.TemporaryDirectory(prefix="crisp-report-") as tmp:
        folder = Path(tmp) if is_remote(output) else Path(str(output).removeprefix("file://"))
        folder.mkdir(parents=True, exist_ok=True)
        yield folder


def publish(
    folder: Path, output: str | Path, storage_options: Mapping[str, Any] | None = None
) -> tuple[str, str]:
    """(report.html, report.json) of `output`; a remote `output` gets every file of `folder` first."""
    if not is_remote(output):
        return str(folder / "report.html"), str(folder / "report.json")
    from pipeline.storage import Storage

    target = Storage(str(output), dict(storage_options or {}))
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        target.upload(str(file), file.relative_to(folder).as_posix())
    return target.uri("report.html"), target.uri("report.json")
