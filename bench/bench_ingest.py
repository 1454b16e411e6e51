"""Ingest benchmark: Crisp vs img2dataset on the same 1,904 loopback URLs of the real product photos.

In: the 476 photos of ../shared/data/products/magento_luma, served by `tests.support.http_server` in a
process of its own (so neither contender shares a GIL with it), each under 4 query strings (1,904 URLs,
as in PLATFORM-NOTES), and `IngestBenchConfig` from the environment (CRISP_BENCH_REPEATS, default 3;
CRISP_BENCH_QUICK=1 for a quick run: 1 repeat, a quarter of the photos). Out: bench/results/ingest.json
with the medians of Crisp's `ingest_partition` (fetch + decode + normalize + dedup, where the 4 copies
are exact duplicates + quality metrics + shards, index, ledgers, GX gate, commit) and of img2dataset
1.47.0 in its own venv (bench/.venvs/img2dataset, installed once) in its like-for-like variant
(`--skip_reencode True`, which decodes every image) and its no-decode variant
(`--disable_all_reencoding True`), all in the same run, plus the ratio Crisp / img2dataset.
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
    - copies: distinct query strings per photo; every copy is the same bytes (default 4).
    - i2d_processes / i2d_threads: img2dataset's processes_count / thread_count (default 2 x 128).
    - i2d_shards_per_process: the URL list is cut into shards so every img2dataset process gets work
      (its default of 10,000 samples per shard would leave one of 2 processes idle on 1,904 URLs).
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


def run_crisp(rows: list[tuple[str, str]], workdir: Path) -> dict[str, Any]:
    """One `ingest_partition` of a CSV feed of `rows` into a fresh file:// root; its figures."""
    from pipeline.crawl import CrawlConfig
    from pipeline.ingest.run import IngestConfig, ingest_partition
    from pipeline.storage import Storage

    with tempfile.TemporaryDirectory(prefix="crisp-ingest-", dir=workdir) as tmp:
        feed = Path(tmp, "feed.csv")
        with open(feed, "w", newline="") as fh:
            csv.writer(fh).writerows([("product_id", "image_url"), *rows])
        config = IngestConfig(crawl=CrawlConfig(allow_hosts=["127.0.0.1"]), workdir=tmp)
        started = time.perf_counter()
        summary = ingest_partition(feed.as_uri(), PARTITION, Storage(Path(tmp, "root").as_uri()), config)
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
    }


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


def main() -> None:
    config = IngestBenchConfig.from_env()
    cores = os.cpu_count() or 1
    load_before = os.getloadavg()
    cli, install_note = ensure_img2dataset()
    files = config.photo_files()
    crisp_runs: list[dict[str, Any]] = []
    i2d_runs: dict[str, list[dict[str, Any]]] = {v: [] for v in I2D_VARIANTS}
    i2d_error = ""
    with tempfile.TemporaryDirectory(prefix="crisp-bench-") as tmp, PhotoServer(config.photos) as server:
        rows = url_rows(server.base_url, files, config.copies)
        # untimed warm-up: first-call imports (GX, pyarrow) and the forkserver are paid once per process
        warm_up_s = run_crisp(url_rows(server.base_url, files[:8], 1), Path(tmp))["seconds"]
        for _ in range(config.repeats):  # interleaved, so a change in machine load hits all alike
            crisp_runs.append(run_crisp(rows, Path(tmp)))
            for variant in I2D_VARIANTS:
                if cli is None or i2d_error:
                    continue
                try:
                    i2d_runs[variant].append(
                        run_img2dataset(cli, [u for _, u in rows], variant, config, Path(tmp))
                    )
                except (RuntimeError, subprocess.TimeoutExpired) as exc:
                    i2d_error = str(exc)
    urls = len(rows)
    figures = rate_figures("crisp", urls, crisp_runs, cores)
    outcome = {k: v for k, v in crisp_runs[-1].items() if k != "seconds"}
    figures["crisp_outcomes"] = figure(outcome["accepted"], "accepted images", **outcome)
    baseline, ratio = None, None
    complete = {v: runs for v, runs in i2d_runs.items() if len(runs) == config.repeats and not i2d_error}
    for variant, runs in complete.items():
        figures.update(rate_figures(f"img2dataset_{variant}", urls, runs, cores))
        spans = [{"seconds": r["span_s"]} for r in runs]
        figures[f"img2dataset_{variant}_images_per_s_without_startup"] = figure(
            round(urls / _median(spans), 1), "inputs/s", note="first shard start to last shard end (its stats files)"
        )  # fmt: skip
    if "skip_reencode" in complete:
        crisp = figures["crisp_images_per_s"]["value"]
        like = figures["img2dataset_skip_reencode_images_per_s"]
        baseline = {"name": f"img2dataset {IMG2DATASET_VERSION} --skip_reencode True (like for like)", **like}
        ratio = {
            "crisp_over_img2dataset_like_for_like": round(crisp / like["value"], 3),
            "crisp_over_img2dataset_like_for_like_without_its_startup": round(
                crisp / figures["img2dataset_skip_reencode_images_per_s_without_startup"]["value"], 3
            ),
        }
        if "no_reencoding" in complete:
            ratio["crisp_over_img2dataset_no_reencoding"] = round(
                crisp / figures["img2dataset_no_reencoding_images_per_s"]["value"], 3
            )
    notes = [
        f"{urls} URLs = {len(files)} photos x {config.copies} query strings (exact duplicates), loopback server "
        f"in its own process; medians of {config.repeats} run(s){' (quick mode)' if config.quick else ''}, "
        "contenders interleaved; wall time of the whole call (Crisp: ingest_partition in-process after an "
        f"untimed {warm_up_s:.1f} s warm-up on 8 URLs, incl. worker pool start, GX gate and commit; "
        "img2dataset: its CLI process, incl. its start-up).",
        f"img2dataset: webdataset, --resize_mode no, {config.i2d_processes} processes x {config.i2d_threads} "
        f"threads, {config.i2d_processes * config.i2d_shards_per_process} input shards. {install_note}.",
        f"load average before/after: {[round(x, 2) for x in load_before]} / "
        f"{[round(x, 2) for x in os.getloadavg()]} on {cores} cores (other processes were running).",
    ]
    if baseline is None:
        notes.append(f"baseline missing: {i2d_error or install_note}")
    write_result(
        "ingest",
        figures,
        baseline=baseline,
        ratio=ratio,
        targets={"crisp_over_img2dataset_like_for_like": ">= 1.0"},
        notes=" ".join(notes),
    )


if __name__ == "__main__":
    main()
