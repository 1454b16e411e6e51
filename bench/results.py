"""Benchmark results files: figures with units, the baseline measured in the same run, ratio, machine, command.

In: a benchmark name and its figures. Out: `bench/results/<name>.json` (committed, so the history of
figures lives in git), or `$CRISP_BENCH_RESULTS_DIR/<name>.json` when that is set (a trial run that must
not replace the committed file). Every file has the same shape so results can be compared across commits.

A benchmark whose trained model another benchmark measures with keeps it: `keep_model(name, data, **facts)`
writes `<models_dir()>/<name>.onnx` (bench/.models, git-ignored; `$CRISP_BENCH_MODELS_DIR` when set) and a
`<name>.json` beside it with its sha256, the code version, the date and `facts`; `kept_model(name)` reads
them back (None when that benchmark has not run here), so the user records where the model came from.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shlex
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"
RESULTS_DIR_ENV = "CRISP_BENCH_RESULTS_DIR"
MODELS_DIR = RESULTS_DIR.parent / ".models"
MODELS_DIR_ENV = "CRISP_BENCH_MODELS_DIR"


def results_dir() -> Path:
    """Where results files go: $CRISP_BENCH_RESULTS_DIR when set, else bench/results."""
    return Path(os.environ.get(RESULTS_DIR_ENV) or RESULTS_DIR)


def models_dir() -> Path:
    """Where benchmarks keep their trained models: $CRISP_BENCH_MODELS_DIR when set, else bench/.models."""
    return Path(os.environ.get(MODELS_DIR_ENV) or MODELS_DIR)


def keep_model(name: str, data: bytes, **facts: Any) -> Path:
    """Write `data` as <models_dir()>/<name>.onnx and its provenance as <name>.json; the .onnx path."""
    directory = models_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.onnx"
    path.write_bytes(data)
    provenance = {
        "sha256": hashlib.sha256(data).hexdigest(),
        "code_version": code_version(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        **facts,
    }
    (directory / f"{name}.json").write_text(json.dumps(provenance, indent=2) + "\n")
    return path


def kept_model(name: str) -> dict[str, Any] | None:
    """{"path": the .onnx, **its provenance} of the model `keep_model(name, ...)` kept, else None."""
    path, facts = models_dir() / f"{name}.onnx", models_dir() / f"{name}.json"
    if not (path.is_file() and facts.is_file()):
        return None
    provenance = json.loads(facts.read_text())
    if hashlib.sha256(path.read_bytes()).hexdigest() != provenance.get("sha256"):
        return None  # overwritten by hand or half-written: not the model the provenance describes
    return {"path": str(path), **provenance}


def machine() -> dict[str, Any]:
    """Cores, RAM and GPU of the machine the benchmark ran on."""
    mem_gib = None
    try:
        with open("/proc/meminfo") as fh:
            mem_gib = round(int(fh.readline().split()[1]) / 2**20, 1)
    except OSError:
        pass
    gpu = None
    try:
        import torch

        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    except Exception:
        pass
    return {
        "cores": os.cpu_count(),
        "ram_gib": mem_gib,
        "gpu": gpu,
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def code_version() -> str:
    """The commit, with "-dirty" when a file outside bench/results/ differs from it: results files that an
    earlier benchmark of the same `python -m bench` call wrote are output, not code."""
    repo = RESULTS_DIR.parent.parent  # both questions go to this checkout, whatever the caller's cwd
    try:
        out = subprocess.run(["git", "describe", "--always"], capture_output=True, text=True, cwd=repo)
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)bench/results"],
            capture_output=True, text=True, cwd=repo,
        )  # fmt: skip
    except OSError:
        return "unknown"
    commit = out.stdout.strip()
    return f"{commit}-dirty" if commit and changed.stdout.strip() else commit or "unknown"


def figure(value: float, unit: str, **extra: Any) -> dict[str, Any]:
    return {"value": value, "unit": unit, **extra}


def write_result(
    name: str,
    figures: dict[str, dict[str, Any]],
    baseline: dict[str, Any] | None = None,
    ratio: dict[str, Any] | None = None,
    targets: dict[str, Any] | None = None,
    notes: str = "",
    config: dict[str, Any] | None = None,
) -> Path:
    """Write <results_dir()>/<name>.json and return its path; `config`, when given, is the run's own
    settings (what a rerun needs to measure the same thing)."""
    directory = results_dir()
    directory.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": name,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv]),
        "code_version": code_version(),
        "machine": machine(),
        "figures": figures,
        "baseline": baseline,
        "ratio": ratio,
        "targets": targets,
        "notes": notes,
        **({"config": config} if config is not None else {}),
    }
    path = directory / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(json.dumps({"benchmark": name, "figures": figures, "ratio": ratio}, indent=2))
    return path
