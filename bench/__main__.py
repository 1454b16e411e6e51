"""`python -m bench [NAME ...]`: run every benchmark in bench/ (or the named ones), each writing its results file."""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time
from pathlib import Path

# benchmark -> the ones whose kept models it measures with: run those first when both are asked for
RUNS_AFTER = {"gan": ("quality",)}


def available() -> list[str]:
    here = Path(__file__).resolve().parent
    return sorted(
        m.name[len("bench_") :] for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_")
    )


def in_run_order(names: list[str]) -> list[str]:
    """`names` as given, except that each one runs after those it needs (RUNS_AFTER) among them."""
    ordered: list[str] = []

    def place(name: str) -> None:
        if name not in ordered:
            for needed in RUNS_AFTER.get(name, ()):
                if needed in names:
                    place(needed)
            ordered.append(name)

    for name in names:
        place(name)
    return ordered


def main(argv: list[str]) -> int:
    names = argv or available()
    unknown = sorted(set(names) - set(available()))
    if unknown:
        print(f"unknown benchmark(s) {unknown}; available: {available()}", file=sys.stderr)
        return 2
    failed = []
    for name in in_run_order(names):
        print(f"== bench {name}", flush=True)
        started = time.perf_counter()
        try:
            importlib.import_module(f"bench.bench_{name}").main()
        except Exception as exc:  # one broken benchmark must not hide the others' figures
            failed.append(name)
            print(f"bench {name} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        print(f"== bench {name} took {time.perf_counter() - started:.0f} s", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
