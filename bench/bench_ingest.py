"""Ingest benchmark: Crisp vs img2dataset vs the Pillow decode floor on the real product photos, each once.

In: the 476 photos of ../shared/data/products/magento_luma, served by `tests.support.http_server` in a
process of its own (so no contender shares a GIL with it), and `IngestBenchConfig` from the environment
(CRISP_BENCH_REPEATS, default 3; CRISP_BENCH_QUICK=1: 1 repeat over a quarter of the photos;
CRISP_BENCH_ALLOW_DIRTY=1 to measure an uncommitted tree). Out: bench/results/ingest.json, all measured in
one run, contenders interleaved, medians of the repeats:
- the headline, unique URLs (every photo once): Crisp's `ingest_partition` (fetch, full decode, normalize,
  content id, pHash + colour signature, quality metrics, dedup, shards, index, ledgers, GX gate, commit)
  on a warm Dask LocalCluster of 1 and of 2 workers; img2dataset 1.47.0 (own venv, bench/.venvs) with
  `--skip_reencode True` (decodes every image) and `--disable_all_reencoding True` (no decode), as whole
  calls and in steady state (its stats: first shard start to last shard end); and the Pillow decode
  floor (`Image.open(...).load()` of the same photos on every core);
- a second figure: the same photos under `copies` query strings each (byte-identical copies, which Crisp
  cleans once), on 2 workers.
Targets (issue #12): Crisp on 2 workers >= 1.5x img2dataset `--skip_reencode` steady state and >= 0.5 of
the decode floor; 1 -> 2 workers >= 1.8x; each flagged met or missed.
"""

from __future__ import annotations

import csv
import json
import multiprocessing
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from bench.results import figure, write_result
from pipeline.reference_data import product_photos_dir

VENV = Path(__file__).resolve().parent / ".venvs" / "img2dataset"
IMG2DATASET_VERSION = "1.47.0"
I2D_VARIANTS = {"skip_reencode": "--skip_reencode", "no_reencoding": "--disable_all_reencoding"}
PARTITION = "2026-01-01"


class IngestBenchConfig(BaseModel):
    """What one ingest benchmark run measures.

    - repeats: runs per contender; figures are medians (default 3, CRISP_BENCH_REPEATS).
    - photos: the folder of photos and their catalog.csv (default `product_photos_dir()`).
    - quick: 1 repeat over the first quarter of the photos (CRISP_BENCH_QUICK=1) for a loaded machine.
    - photo_limit: use only the first N photos (CRISP_BENCH_PHOTOS; default all, or a quarter when quick).
    - copies: query strings per photo in the second figure; every copy is the same bytes (default 4).
    - i2d_processes / i2d_threads: img2dataset's processes_count / thread_count (default 2 x 128).
    - i2d_shards_per_process: the URL list is cut into shards so every img2dataset process gets work
      (its default of 10,000 samples per shard would leave one of 2 processes idle).
    - workers: the Dask LocalCluster sizes Crisp is measured on (default 1 and 2).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    repeats: int = Field(default=3, ge=1)
    quick: bool = False
    photos: Path = Field(default_factory=product_photos_dir)
    photo_limit: int | None = Field(default=None, ge=1)
    copies: int = Field(default=4, ge=1)
    i2d_processes: int = Field(default=2, ge=1)
    i2d_threads: int = Field(default=128, ge=1)
    i2d_shards_per_process: int = Field(default=2, ge=1)
    workers: tuple[int, ...] = (1, 2)

    @classmethod
    def from_env(cls) -> IngestBenchConfig:
        quick = os.environ.get("CRISP_BENCH_QUICK", "") not in ("", "0")
        repeats = int(os.environ.get("CRISP_BENCH_REPEATS", "1" if quick else "3"))
        limit = os.environ.get("CRISP_BENCH_PHOTOS")
        return cls(repeats=repeats, quick=quick, photo_limit=int(limit) if limit else None)

    def photo_files(self) -> list[str]:
        with open(self.photos / "catalog.csv", newline="") as fh:
            files = [row["file"] for row in csv.DictReader(fh)]
        return files[: self.photo_limit or (len(files) // 4 if self.quick else None)]


def url_rows(base_url: str, files: list[str], copies: int) -> list[tuple[str, str]]:
    """(product_id, url) per URL: every photo under `copies` distinct query strings, copy-major order."""
    return [(Path(f).stem, f"{base_url}/{f}?copy={c}") for c in range(copies) for f in files]


def _serve(directory: str, conn: Any, stop: Any) -> None:
    from tests.support.http_server import LoopbackHTTPServer

    with LoopbackHTTPServer(directory) as server:
        conn.send(server.base_url)
        stop.wait()


class PhotoServer:
    """The loopback server in a spawned process; `base_url` once started."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def __enter__(self) -> PhotoServer:
        ctx = multiprocessing.get_context("spawn")
        receiver, sender = ctx.Pipe(duplex=False)
        self._stop = ctx.Event()
        self._process = ctx.Process(
            target=_serve, args=(str(self.directory), sender, self._stop), daemon=True
        )
        self._process.start()
        if not receiver.poll(60):
            raise RuntimeError("the loopback photo server did not start within 60 s")
        self.base_url = receiver.recv()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._process.join(10)
        if self._process.is_alive():
            self._process.terminate()


def run_crisp(rows: list[tuple[str, str]], workdir: Path, client: Any) -> dict[str, Any]:
    """One `ingest_partition` of a CSV feed of `rows` into a fresh file:// root on `client`; its figures."""
    from pipeline.crawl import CrawlConfig
    from pipeline.ingest.run import IngestConfig, ingest_partition
    from pipeline.storage import Storage

    with tempfile.TemporaryDirectory(prefix="crisp-ingest-", dir=workdir) as tmp:
        feed = Path(tmp, "feed.csv")
        with open(feed, "w", newline="") as fh:
            csv.writer(fh).writerows([("product_id", "image_url"), *rows])
        config = IngestConfig(crawl=CrawlConfig(allow_hosts=["127.0.0.1"]), workdir=tmp)
        root = Storage(Path(tmp, "root").as_uri())
        started = time.perf_counter()
        summary = ingest_partition(feed.as_uri(), PARTITION, root, config, client=client)
        seconds = time.perf_counter() - started
    if summary.accepted + summary.duplicates + summary.rejected_total != summary.inputs:
        raise RuntimeError(f"Crisp's counts do not add up: {summary.to_dict()}")
    return {
        "seconds": seconds,
        "inputs": summary.inputs,
        "accepted": summary.accepted,
        "duplicates_exact": summary.duplicates_exact,
        "duplicates_near": summary.duplicates_near,
        "rejected": summary.rejected,
        "workers": summary.workers,
    }


def _decode(path: str) -> int:
    from PIL import Image

    with Image.open(path) as image:
        image.load()
        return image.width * image.height


def decode_floor(paths: list[str], processes: int) -> dict[str, Any]:
    """Wall seconds to fully decode every photo with Pillow on `processes` warm processes."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(processes) as pool:
        pool.map(_decode, paths[: processes * 2])  # warm: imports paid before the clock starts
        started = time.perf_counter()
        pixels = sum(pool.map(_decode, paths, chunksize=4))
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "pixels": pixels}


def ensure_img2dataset() -> tuple[Path | None, str]:
    """img2dataset's CLI in its own venv, created and installed on first use; (None, why) on failure."""
    cli, python = VENV / "bin" / "img2dataset", VENV / "bin" / "python"
    probe = [str(python), "-c", "import importlib.metadata as m; print(m.version('img2dataset'))"]
    if (
        python.exists()
        and subprocess.run(probe, capture_output=True, text=True).stdout.strip() == IMG2DATASET_VERSION
    ):
        return cli, f"img2dataset {IMG2DATASET_VERSION} reused from {VENV}"
    steps = [
        ["python3", "-m", "venv", str(VENV)],
        [str(python), "-m", "pip", "install", "-q", f"img2dataset=={IMG2DATASET_VERSION}"],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, timeout=1800)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            return None, f"installing img2dataset failed at `{' '.join(step)}`: {' | '.join(tail)}"
    return cli, f"img2dataset {IMG2DATASET_VERSION} installed into {VENV}"


def run_img2dataset(
    cli: Path, urls: list[str], variant: str, config: IngestBenchConfig, workdir: Path
) -> dict[str, Any]:
    """One img2dataset run over `urls` (webdataset, no resizing); wall seconds and successes."""
    with tempfile.TemporaryDirectory(prefix="i2d-", dir=workdir) as tmp:
        url_list = Path(tmp, "urls.txt")
        url_list.write_text("\n".join(urls) + "\n")
        per_shard = -(-len(urls) // (config.i2d_processes * config.i2d_shards_per_process))
        command = [
            str(cli), "--url_list", str(url_list), "--input_format", "txt", "--output_format", "webdataset",
            "--output_folder", str(Path(tmp, "out")), "--processes_count", str(config.i2d_processes),
            "--thread_count", str(config.i2d_threads), "--number_sample_per_shard", str(per_shard),
            "--resize_mode", "no", "--enable_wandb", "False", I2D_VARIANTS[variant], "True",
        ]  # fmt: skip
        env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"}
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1800)
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"img2dataset {variant} failed: {done.stderr.strip()[-500:]}")
        stats = [json.loads(p.read_text()) for p in Path(tmp, "out").glob("*_stats.json")]
    # its own clock: first shard start to last shard end, i.e. without the CLI's start-up and shutdown
    span = max(s["end_time"] for s in stats) - min(s["start_time"] for s in stats) if stats else seconds
    return {"seconds": seconds, "span_s": span, "successes": sum(s.get("successes", 0) for s in stats)}


def _median(runs: list[dict[str, Any]], key: str = "seconds") -> float:
    return statistics.median(r[key] for r in runs)


def rate_figures(name: str, urls: int, runs: list[dict[str, Any]], cores: int) -> dict[str, dict[str, Any]]:
    """`<name>_images_per_s` (median wall time) and its per-core figure, with every run's seconds."""
    rate = urls / _median(runs)
    extra = {k: [r[k] for r in runs] for k in ("successes",) if k in runs[0]}
    return {
        f"{name}_images_per_s": figure(round(rate, 1), "inputs/s", runs_s=[round(r["seconds"], 2) for r in runs], **extra),
        f"{name}_images_per_s_per_core": figure(round(rate / cores, 1), "inputs/s/core"),
    }  # fmt: skip


def crisp_runs_on(workers: int, rows_by_name: dict[str, list], workdir: Path) -> dict[str, dict]:
    """Crisp over each named row list on a fresh, warmed LocalCluster of `workers` (start-up untimed)."""
    from distributed import Client

    from pipeline.cluster import start_local_cluster
    from pipeline.ingest.run import IngestConfig

    cluster = start_local_cluster(workers)
    try:
        with Client(cluster) as client:
            # enough URLs for a batch on every worker: first-call imports (GX, pyarrow, aiohttp) on the
            # driver and on each worker
            warm = next(iter(rows_by_name.values()))[: IngestConfig().batch_urls * workers]
            run_crisp(warm, workdir, client)
            return {name: run_crisp(rows, workdir, client) for name, rows in rows_by_name.items()}
    finally:
        cluster.close()


def main() -> None:
    from bench.results import code_version

    config = IngestBenchConfig.from_env()
    version = code_version()
    if version.endswith("-dirty") and os.environ.get("CRISP_BENCH_ALLOW_DIRTY") != "1":
        raise SystemExit(
            "bench ingest: the tree is dirty; commit first (or CRISP_BENCH_ALLOW_DIRTY=1 to try)"
        )
    cores = os.cpu_count() or 1
    load_before = os.getloadavg()
    cli, install_note = ensure_img2dataset()
    files = config.photo_files()
    runs: dict[str, list[dict[str, Any]]] = {}
    i2d_error = ""
    with tempfile.TemporaryDirectory(prefix="crisp-bench-") as tmp, PhotoServer(config.photos) as server:
        unique = url_rows(server.base_url, files, 1)
        copies = url_rows(server.base_url, files, config.copies)
        for _ in range(config.repeats):  # interleaved, so a change in machine load hits all alike
            runs.setdefault("floor", []).append(decode_floor([str(config.photos / f) for f in files], cores))
            for workers in config.workers:  # one cluster at a time: no idle workers share the cores
                rows = {"unique": unique} | ({"copies": copies} if workers == max(config.workers) else {})
                for name, run in crisp_runs_on(workers, rows, Path(tmp)).items():
                    runs.setdefault(f"crisp_{name}_{workers}w", []).append(run)
            for variant in I2D_VARIANTS:
                if cli is None or i2d_error:
                    continue
                try:
                    runs.setdefault(f"i2d_{variant}", []).append(
                        run_img2dataset(cli, [u for _, u in unique], variant, config, Path(tmp))
                    )
                except (RuntimeError, subprocess.TimeoutExpired) as exc:
                    i2d_error = str(exc)
    figures, targets = summarize(runs, len(unique), len(copies), cores, config, i2d_error)
    notes = [
        f"unique: {len(unique)} URLs, each photo once; copies: {len(copies)} URLs = {len(files)} photos x "
        f"{config.copies} query strings (byte-identical). Loopback server in its own process; medians of "
        f"{config.repeats} run(s){' (quick mode)' if config.quick else ''}, contenders interleaved.",
        "Crisp: the whole ingest_partition call on a warm LocalCluster (its start-up and a warm-up run "
        "untimed), GX gate and commit included. img2dataset: whole CLI call, and steady state from its "
        f"stats files; webdataset, --resize_mode no, {config.i2d_processes} processes x {config.i2d_threads} "
        f"threads. {install_note}. Floor: Pillow full decode of the same photos on {cores} warm processes.",
        f"load average before/after: {[round(x, 2) for x in load_before]} / "
        f"{[round(x, 2) for x in os.getloadavg()]} on {cores} cores.",
    ]
    if i2d_error or cli is None:
        notes.append(f"img2dataset missing: {i2d_error or install_note}")
    write_result("ingest", figures, targets=targets, notes=" ".join(notes))


def summarize(runs, unique: int, copies: int, cores: int, config, i2d_error: str):
    """Figures and met/missed targets from every run's seconds (medians)."""
    figures: dict[str, dict[str, Any]] = {}
    rate: dict[str, float] = {}
    for name, name_runs in runs.items():
        if name == "floor":
            rate[name] = unique / _median(name_runs)
            figures["decode_floor_images_per_s"] = figure(
                round(rate[name], 1),
                "images/s",
                processes=cores,
                runs_s=[round(r["seconds"], 2) for r in name_runs],
            )
            continue
        urls = copies if "copies" in name else unique
        figures.update(rate_figures(name, urls, name_runs, cores))
        rate[name] = figures[f"{name}_images_per_s"]["value"]
        if name.startswith("i2d_") and "span_s" in name_runs[0]:
            steady = urls / _median(name_runs, "span_s")
            rate[f"{name}_steady"] = steady
            figures[f"{name}_steady_images_per_s"] = figure(
                round(steady, 1), "images/s", note="first shard start to last shard end (its stats files)"
            )
        if name.startswith("crisp_"):
            figures[f"{name}_outcomes"] = figure(
                name_runs[-1]["accepted"], "accepted images", **name_runs[-1]
            )
    best, single = f"crisp_unique_{max(config.workers)}w", f"crisp_unique_{min(config.workers)}w"

    def target(measured: float | None, goal: float) -> dict[str, Any]:
        if measured is None:
            return {"target": goal, "measured": None, "met": False, "why": i2d_error or "not measured"}
        return {"target": goal, "measured": round(measured, 3), "met": measured >= goal}

    i2d = rate.get("i2d_skip_reencode_steady")
    targets = {
        f"{best}_over_img2dataset_skip_reencode_steady>=1.5": target(rate[best] / i2d if i2d else None, 1.5),
        f"{best}_over_decode_floor>=0.5": target(rate[best] / rate["floor"], 0.5),
        "crisp_unique_2_workers_over_1>=1.8": target(rate[best] / rate[single], 1.8),
    }
    return figures, targets


if __name__ == "__main__":
    main()
