"""Benchmark results files: figures with units, the baseline measured in the same run, ratio, machine, command.

In: a benchmark name and its figures. Out: `bench/results/<name>.json` (committed, so the history of
figures lives in git), or `$CRISP_BENCH_RESULTS_DIR/<name>.json` when that is set (a trial run that must
not replace the committed file). Every file has the same shape so results can be compared across commits.
"""

from __future__ import annotations

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


def results_dir() -> Path:
    """Where results files go: $CRISP_BENCH_RESULTS_DIR when set, else bench/results."""
    return Path(os.environ.get(RESULTS_DIR_ENV) or RESULTS_DIR)


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
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True)
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


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
