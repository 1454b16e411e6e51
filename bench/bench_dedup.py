"""Dedup-history bench: how long a partition's dedup lookup takes, and what memory it adds, when the storage
root already holds a long history, through the persistent dedup index (`pipeline.ingest.dedup_index`).

In: env CRISP_BENCH_DEDUP_PARTITIONS (default 365), _IMAGES (prior images per partition, 20,000), _QUERIES
(candidates of the new partition, 10,000), _NEAR_SHARE (share of candidates planted within Hamming 4 of a
prior image, 0.1), _REPEATS (3), CRISP_BENCH_ALLOW_DIRTY (results from a dirty tree only when "1").
Out: bench/results/dedup.json: lookup seconds and peak-RSS growth over the same lookup against an empty
history (each in a fresh process, the median of the repeats), the planted neighbours found, and in the
same run the baseline that keeps the whole history in memory (every prior pHash loaded, one
`pairs_within_radius` scan), with the targets of issue #12 (<= 2 s, <= 200 MB) flagged met or missed.

The history is synthetic (uniform random 64-bit pHashes, 64-character ids, random colour signatures): the
index's cost depends on the number of images, not on the pixels. It is built with `dedup_index.add` in
groups of partitions, the state size-tiered compaction leaves behind.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np

from bench.results import code_version, figure, write_result

CHILD = """
import json, sys, time
import numpy as np
from bench.bench_dedup import peak_kib
from pipeline.clean.hashing import pairs_within_radius
from pipeline.ingest import dedup_index
from pipeline.storage import Storage
storage, queries, mode = Storage(sys.argv[1]), np.load(sys.argv[2]), sys.argv[3]
index = dedup_index.read_index(storage)
before = peak_kib()
started = time.perf_counter()
if mode == "index":
    found = len(dedup_index.prior_near(storage, "9999-12-31", queries, 4, index)[0])
else:  # the whole history in memory, as before the index: every pHash of every segment, one scan
    every = np.concatenate([np.frombuffer(storage.read_bytes(f"dedup/images/segments/{s.segment_id}/band0.bin"),
        dtype=[("phash", "<u8"), ("row", "<u4")])["phash"].copy() for s in index.segments] or [np.zeros(0, np.uint64)])
    found = len(np.unique(pairs_within_radius(queries, every, 4)[1]))
seconds = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "peak_growth_mib": (peak_kib() - before) / 1024, "found": found}))
"""


def peak_kib() -> int:
    """This process's peak resident memory so far (VmHWM), in KiB."""
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))


def _env(name: str, default: float) -> float:
    return float(os.environ.get(f"CRISP_BENCH_DEDUP_{name}", default))


def build_history(storage, partitions: int, images: int, rng: np.random.Generator) -> np.ndarray:
    """Index `partitions` x `images` synthetic prior images; returns every prior pHash."""
    import pyarrow as pa

    from pipeline.ingest import dedup_index

    index, every = dedup_index.read_index(storage), []
    group = max(1, partitions // 5)
    now = datetime.now(UTC)
    for first in range(0, partitions, group):
        additions = []
        for day in range(first, min(partitions, first + group)):
            phashes = rng.integers(0, 2**64 - 1, images, dtype=np.uint64, endpoint=True)
            every.append(phashes)
            ids = [f"{day:04d}{n:060d}" for n in range(images)]
            colors = rng.integers(0, 256, (images, 192), dtype=np.uint8)
            table = pa.table(
                {
                    "image_id": ids,
                    "phash": phashes.view(np.int64),
                    "color_signature": pa.array(list(map(bytes, colors)), pa.binary(192)),
                }
            )
            additions.append(((date(2000, 1, 1) + timedelta(days=day)).isoformat(), "bench", table))
        index = dedup_index.add(storage, index, additions, now)
    return np.concatenate(every) if every else np.zeros(0, np.uint64)


def measure(root: str, queries_path: str, mode: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, root, queries_path, mode], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    from pipeline.storage import Storage

    version = code_version()
    if version.endswith("-dirty") and os.environ.get("CRISP_BENCH_ALLOW_DIRTY") != "1":
        raise SystemExit("bench dedup: the tree is dirty; commit first (or CRISP_BENCH_ALLOW_DIRTY=1 to try)")
    partitions, images = int(_env("PARTITIONS", 365)), int(_env("IMAGES", 20_000))
    query_count, near_share = int(_env("QUERIES", 10_000)), _env("NEAR_SHARE", 0.1)
    repeats = int(_env("REPEATS", 3))
    rng = np.random.default_rng(2026)
    with tempfile.TemporaryDirectory(prefix="crisp-bench-dedup-") as tmp:
        empty, full = Storage(Path(tmp, "empty").as_uri()), Storage(Path(tmp, "full").as_uri())
        started = time.perf_counter()
        history = build_history(full, partitions, images, rng)
        build_s = time.perf_counter() - started
        planted = rng.choice(history, int(query_count * near_share), replace=False)
        for position in range(planted.size):  # 0-4 bits away from a prior image
            for bit in rng.choice(64, int(rng.integers(0, 5)), replace=False):
                planted[position] ^= np.uint64(1) << np.uint64(bit)
        fresh = rng.integers(0, 2**64 - 1, query_count - planted.size, dtype=np.uint64, endpoint=True)
        queries_path = str(Path(tmp, "queries.npy"))
        np.save(queries_path, np.concatenate([planted, fresh]))
        runs = {mode: [] for mode in ("empty", "index", "full_scan")}
        for _ in range(repeats):
            runs["empty"].append(measure(empty.uri(), queries_path, "index"))
            runs["index"].append(measure(full.uri(), queries_path, "index"))
            runs["full_scan"].append(measure(full.uri(), queries_path, "full_scan"))
        index_bytes = sum(os.path.getsize(p) for p in Path(tmp, "full").rglob("*") if p.is_file())

    def median(mode: str, key: str) -> float:
        return statistics.median(run[key] for run in runs[mode])

    seconds, growth = (
        median("index", "seconds"),
        median("index", "peak_growth_mib") - median("empty", "peak_growth_mib"),
    )
    found_all = all(run["found"] >= planted.size for run in runs["index"])
    figures = {
        "lookup_s": figure(round(seconds, 3), "s", runs=[round(r["seconds"], 3) for r in runs["index"]]),
        "peak_memory_growth_mib": figure(round(growth, 1), "MiB", over="the same lookup on an empty history"),
        "planted_neighbours_found": figure(
            min(r["found"] for r in runs["index"]), "images", planted=int(planted.size), all_found=found_all
        ),
        "history_images": figure(int(history.size), "images", partitions=partitions, per_partition=images),
        "index_bytes": figure(index_bytes, "bytes"),
        "build_s": figure(round(build_s, 1), "s"),
    }
    baseline = {
        "name": "whole history in memory: every prior pHash loaded, one pairs_within_radius scan",
        "lookup_s": round(median("full_scan", "seconds"), 3),
        "peak_memory_growth_mib": round(
            median("full_scan", "peak_growth_mib") - median("empty", "peak_growth_mib"), 1
        ),
    }
    targets = {
        "lookup_s<=2": {"target": 2.0, "measured": round(seconds, 3), "met": seconds <= 2.0},
        "peak_memory_growth_mib<=200": {"target": 200, "measured": round(growth, 1), "met": growth <= 200},
        "every_planted_neighbour_found": {"met": found_all},
    }
    path = write_result(
        "dedup",
        figures,
        baseline=baseline,
        ratio={"baseline_over_index_seconds": round(baseline["lookup_s"] / seconds, 2) if seconds else None},
        targets=targets,
        notes=f"{query_count} candidates ({planted.size} planted within Hamming 4) against {history.size:,} "
        f"prior images in {partitions} partitions; each lookup in a fresh process, median of {repeats}",
    )
    print(json.dumps({"figures": figures, "baseline": baseline, "targets": targets}, indent=1))
    print(f"wrote {path}")
