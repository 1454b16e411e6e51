"""`crisp data-docs --date D`: a partition's data-quality evidence as an HTML page.

In: --date YYYY-MM-DD, --dataset (default `images`; `pairs/<recipe>` for pairs), optional --attempt ID (a
quarantined attempt; default: the committed one), --root (else the settings' root), --out DIR. Out: the
stored `validation.json` (`schemas.validation`) of that attempt rendered into DIR (default
`data-docs/<dataset>/<date>/<attempt>`): `index.html`, one self-contained page (no scripts, no network)
with every suite and expectation, pass or fail, observed value, unexpected counts and samples, the
outcome-accounting check, the GX version and times; and `gx/<n>-<table>.html`, each suite drawn by Great
Expectations' own Data Docs renderer from the stored GX results (no live context; those pages load GX's
stylesheets from the web, they read fine without). Prints the index path. Exit 0, or 2 with one line
for a bad date, a partition that is not committed, an attempt that is not quarantined, missing evidence.
"""

from __future__ import annotations

import argparse
import html
import json
import logging
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; width: 100%; margin-bottom: 1.5em; }
th, td { border: 1px solid #ccc; padding: 4px 6px; text-align: left; vertical-align: top; }
th { background: #f2f2f2; } code { font-size: 12px; word-break: break-all; }
.pass { color: #176f2c; font-weight: bold; } .fail { color: #b00020; font-weight: bold; }
tr.failed { background: #fdecee; }
dl { display: grid; grid-template-columns: max-content auto; gap: 2px 12px; }
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "data-docs",
        help="render a partition's GX validation results (committed or quarantined) as HTML",
        description="Render the stored Great Expectations results (validation.json) of a committed "
        "partition, or of a quarantined attempt with --attempt, as an HTML page.",
    )
    p.add_argument("--date", required=True, help="partition date, YYYY-MM-DD")
    p.add_argument("--dataset", default="images", help="dataset, e.g. images or pairs/bicubic_x4")
    p.add_argument("--attempt", metavar="ID", help="a quarantined attempt (default: the committed one)")
    p.add_argument("--root", help="storage root URI (default: `root` from the settings / CRISP_ROOT)")
    p.add_argument("--out", type=Path, help="output folder (default data-docs/<dataset>/<date>/<attempt>)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from crisp.commands import settings_with_root
    from pipeline.commit import ChecksumMismatch, PartitionNotCommittedError
    from pipeline.ingest.run import parse_partition

    try:
        partition = parse_partition(args.date)
    except ValueError as exc:
        return _fail(f"--date: {exc}", 2)
    settings = settings_with_root(args)
    try:
        storage = settings.storage()
        evidence, state = load_evidence(storage, args.dataset, partition, args.attempt)
    except (PartitionNotCommittedError, LookupError, ValueError, ChecksumMismatch) as exc:
        return _fail(str(exc).strip("'\""), 2)
    out = args.out or Path("data-docs") / args.dataset / partition / evidence.attempt_id
    print(write_docs(evidence, state, out))
    return 0


def load_evidence(storage, dataset: str, partition: str, attempt: str | None):
    """(the `Validation`, "committed" | "quarantined") of the committed attempt or a quarantined one;
    PartitionNotCommittedError / LookupError with a one-line reason when there is none."""
    from pipeline.commit import partition_dir, read_manifest, read_verified
    from schemas.validation import QUARANTINE_DIR, VALIDATION_NAME, Validation

    base = partition_dir(dataset, partition)
    if attempt is None:
        manifest = read_manifest(storage, dataset, partition)
        try:
            return Validation.from_json(read_verified(storage, manifest, VALIDATION_NAME)), "committed"
        except KeyError:
            raise LookupError(
                f"{dataset}/{partition} (attempt {manifest.attempt_id}) was committed without "
                f"{VALIDATION_NAME}: rerun the stage that wrote it to record its validation results"
            ) from None
    if "/" in attempt or attempt in ("", ".", ".."):
        raise ValueError(f"--attempt {attempt!r} is not an attempt id")
    data = storage.read_bytes_or_none(f"{base}/{QUARANTINE_DIR}/{attempt}/{VALIDATION_NAME}")
    if data is None:
        kept = storage.list_dirs(f"{base}/{QUARANTINE_DIR}")
        listed = ", ".join(kept) or "none"
        raise LookupError(f"no quarantined attempt {attempt} in {storage.uri(base)}; quarantined: {listed}")
    return Validation.from_json(data), "quarantined"


def write_docs(evidence, state: str, out: Path) -> Path:
    """Write index.html (and GX's pages under gx/) into `out`; return the index path."""
    out.mkdir(parents=True, exist_ok=True)
    gx_pages = _gx_pages(evidence, out)
    index = out / "index.html"
    index.write_text(render_page(evidence, state, gx_pages), encoding="utf-8")
    return index


def render_page(evidence, state: str, gx_pages: dict[int, str] | None = None) -> str:
    """One self-contained HTML page of the evidence (every suite, every expectation)."""
    gx_pages = gx_pages or {}
    verdict = "PASSED" if evidence.success else "FAILED"
    title = f"{evidence.dataset}/{evidence.partition} attempt {evidence.attempt_id}"
    facts = {
        "state": state,
        "verdict": verdict,
        "expectations": f"{evidence.evaluated} evaluated, {evidence.failed} failed",
        "Great Expectations": evidence.gx_version or "-",
        "started": f"{evidence.started_at:%Y-%m-%d %H:%M:%S} UTC",
        "finished": f"{evidence.finished_at:%Y-%m-%d %H:%M:%S} UTC",
        "counts": ", ".join(f"{k} {v}" for k, v in sorted(evidence.counts.items())) or "-",
    }
    if evidence.accounting is not None:
        mark = "passed" if evidence.accounting.success else "FAILED"
        facts["outcome accounting"] = f"{mark}: {evidence.accounting.rule}"
    css = "pass" if evidence.success else "fail"
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{_e(title)}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>Data quality: {_e(title)} <span class='{css}'>{verdict}</span></h1>",
        "<dl>" + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in facts.items()) + "</dl>",
    ]
    if evidence.failures:
        parts.append("<h2>Failures</h2><ul class='failures'>")
        parts += [f"<li><code>{_e(line)}</code></li>" for line in evidence.failures]
        parts.append("</ul>")
    for n, suite in enumerate(evidence.suites):
        link = f" (<a href='{_e(gx_pages[n])}'>GX Data Docs view</a>)" if n in gx_pages else ""
        mark = "<span class='pass'>pass</span>" if suite.success else "<span class='fail'>FAIL</span>"
        parts.append(f"<h2 id='suite-{n}'>{_e(suite.table)}: suite {_e(suite.suite)} {mark}{link}</h2>")
        parts.append(
            "<table><tr><th>expectation</th><th>arguments</th><th>result</th><th>observed</th>"
            "<th>unexpected</th><th>sample of unexpected</th></tr>"
        )
        parts += [_row(e) for e in suite.expectations]
        parts.append("</table>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _row(e) -> str:
    result = "<span class='pass'>pass</span>" if e.success else "<span class='fail'>FAIL</span>"
    unexpected = "" if e.unexpected_count is None else str(e.unexpected_count)
    if e.unexpected_percent is not None and e.unexpected_count:
        unexpected += f" ({e.unexpected_percent:.3g}%)"
    observed = _short(e.observed_value) if e.exception is None else f"error: {e.exception}"
    args = ", ".join(f"{k}={_short(v, 120)}" for k, v in e.kwargs.items())
    if e.rule:
        args += f" [{e.rule}]"
    sample = _short(e.partial_unexpected_list) if e.partial_unexpected_list else ""
    cells = [e.type, args, None, observed, unexpected, sample]
    tds = "".join(f"<td>{result}</td>" if c is None else f"<td><code>{_e(c)}</code></td>" for c in cells)
    return f"<tr class='{'passed' if e.success else 'failed'}'>{tds}</tr>"


def _gx_pages(evidence, out: Path) -> dict[int, str]:
    """Each suite drawn by GX's ValidationResultsPageRenderer from its stored results: {suite index: path}."""
    stored = [(n, s) for n, s in enumerate(evidence.suites) if s.gx]
    if not stored:
        return {}
    try:
        from great_expectations.core.expectation_validation_result import (
            ExpectationSuiteValidationResultSchema,
        )
        from great_expectations.render.renderer import ValidationResultsPageRenderer
        from great_expectations.render.view import DefaultJinjaPageView
    except ImportError as exc:  # the own page is complete without them
        log.warning("GX renderers unavailable (%s): writing the summary page only", exc)
        return {}
    (out / "gx").mkdir(exist_ok=True)
    pages = {}
    for n, suite in stored:
        name = f"gx/{n:02d}-{''.join(c if c.isalnum() else '_' for c in suite.table)}.html"
        try:
            result = ExpectationSuiteValidationResultSchema().load(suite.gx)
            page = DefaultJinjaPageView().render(ValidationResultsPageRenderer().render(result))
        except Exception as exc:  # a result GX cannot redraw still has its rows on the own page
            log.warning("GX could not render suite %s (%s): %s", suite.suite, suite.table, exc)
            continue
        (out / name).write_text(page, encoding="utf-8")
        pages[n] = name
    return pages


def _short(value: Any, limit: int = 300) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _fail(message: str, code: int) -> int:
    print(f"crisp data-docs: {message}", file=sys.stderr)
    return code
