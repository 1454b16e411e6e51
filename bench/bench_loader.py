"""Loader benchmark: Crisp's training loader against LitData 0.2.76 on the same pair tiles, local and moto S3.

In: the first `photo_limit` product photos of ../shared/data/products/magento_luma, committed at full size as
`images/<date>` (tests/support/image_partitions.py) and made into `pairs/bicubic_x4/<date>` by the pairs job
(`build_pairs` defaults: up to 480 px HR tiles as zstd `.npy`, LR tiles as PNG, 16 MB shards) on a local
root, mirrored to a bucket of a moto S3 server started here; the same train tiles' member bytes, converted by `litdata.optimize` (16 MB
chunks) into a local folder, mirrored to the bucket too; `LoaderBenchConfig` from the environment
(CRISP_BENCH_REPEATS = epochs, default 3; CRISP_BENCH_QUICK=1 or CRISP_BENCH_PHOTOS: fewer photos).
Out: bench/results/loader.json: samples/s (median of the epochs, and the first epoch's, which starts the
workers; batch 16, LR 48 / HR 192 random crops +
flips, OMP_NUM_THREADS=1, 0 and 2 loader workers) of Crisp's `SRDataModule.train_dataloader()` and of
LitData's StreamingDataset + StreamingDataLoader, from local files and from S3; the ratios Crisp / LitData and
the decision issue 5 asks for (direct shard reads or a LitData `optimize` copy), stated from those ratios.

Each contender runs in a child process (bench/loader_contenders.py), LitData's with
PYTHONPATH=bench/.venvs/litdata-site (litdata + obstore installed there with --no-deps on first use, so the
CUDA torchvision wheel never enters the project venv); the S3 server lives in this parent. LitData caches
downloaded chunks: its S3 epochs start from an empty cache (Crisp caches nothing), plus one warm-cache epoch.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from bench.loader_contenders import PARTITION, RECIPE, REPO, SCALE, SITE, run_contender
from bench.results import figure, write_result
from pipeline.reference_data import product_photos_dir

LITDATA = ("litdata==0.2.76", "obstore")
KEYS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
SHARD_BYTES = 16 << 20  # pair shard size = LitData's chunk_bytes
PARITY = 0.9  # Crisp / LitData at or above this counts as "as fast": epochs on a shared 2-core box vary ~10 %


class LoaderBenchConfig(BaseModel):
    """What one loader benchmark run measures.

    - epochs: timed epochs per contender, source and worker count; medians (default 3, CRISP_BENCH_REPEATS).
    - photos / photo_limit: the photo folder and how many photos (by name) become pairs (default 48, about
      400 train tiles; 24 when CRISP_BENCH_QUICK=1; CRISP_BENCH_PHOTOS overrides).
    - workers: loader worker counts compared (default 0 and 2).
    - batch_size / patch: batch and LR crop side (HR = patch * 4) (defaults 16 and 48).
    - chunk_bytes: LitData's chunk size (default "16MB", its fast setting on S3 in PLATFORM-NOTES).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    epochs: int = Field(default=3, ge=1)
    quick: bool = False
    photos: Path = Field(default_factory=product_photos_dir)
    photo_limit: int = Field(default=48, ge=4)
    workers: tuple[int, ...] = (0, 2)
    batch_size: int = Field(default=16, ge=1)
    patch: int = Field(default=48, ge=4)
    chunk_bytes: str = "16MB"

    @classmethod
    def from_env(cls) -> LoaderBenchConfig:
        quick = os.environ.get("CRISP_BENCH_QUICK", "") not in ("", "0")
        limit = int(os.environ.get("CRISP_BENCH_PHOTOS", "24" if quick else "48"))
        return cls(epochs=int(os.environ.get("CRISP_BENCH_REPEATS", "3")), quick=quick, photo_limit=limit)


def ensure_litdata() -> str:
    """Install litdata + obstore into SITE (--no-deps) unless importable from there; '' or why not."""
    probe = [sys.executable, "-c", "import litdata, obstore; print(litdata.__version__)"]
    env = {**os.environ, "PYTHONPATH": str(SITE)}
    if subprocess.run(probe, capture_output=True, text=True, env=env).stdout.strip() == "0.2.76":
        return ""
    install = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(SITE), *LITDATA]
    done = subprocess.run(install, capture_output=True, text=True, timeout=900)
    if done.returncode != 0 or subprocess.run(probe, capture_output=True, text=True, env=env).returncode:
        return f"litdata could not be installed into {SITE}: {(done.stderr or done.stdout).strip()[-300:]}"
    return ""


def build_pairs_root(root: Path, photos: list[Path]) -> dict[str, Any]:
    """Commit images + pairs/bicubic_x4 under `root`; the pairs job's summary figures."""
    from pipeline.pairs.config import PairsConfig
    from pipeline.pairs.job import build_pairs
    from pipeline.storage import Storage
    from tests.support.image_partitions import write_image_partition

    storage = Storage(root.as_uri())
    write_image_partition(storage, PARTITION, photos, max_side=None, shard_target_bytes=8 << 20)
    # pair shards roll over at 16 MB, the size of LitData's chunks: both read the same container size
    config = PairsConfig(hr_tile=480, workers=2, shard_target_bytes=SHARD_BYTES)
    summary = build_pairs(storage, RECIPE, [PARTITION], config)
    return {
        "pairs": summary.pairs,
        "bytes_per_pair": round(summary.bytes_per_pair),
        "seconds": round(summary.seconds, 1),
    }


def train_tiles(root: Path, patch: int) -> list[list[Any]]:
    """The train tiles Crisp's loader reads (same split and LR size filter), as read_tile arguments."""
    import pyarrow.compute as pc

    from pipeline.storage import Storage
    from training.data.catalog import load_catalog

    rows = load_catalog(Storage(root.as_uri()), RECIPE, [PARTITION], SCALE).split("train")
    rows = rows.filter(
        pc.and_(pc.greater_equal(rows["lr_width"], patch), pc.greater_equal(rows["lr_height"], patch))
    )
    columns = ["shard_path", "pair_id", "hr_offset", "hr_size", "lr_offset", "lr_size"]
    return [[str(root / r[0]), *r[1:]] for r in zip(*(rows[c].to_pylist() for c in columns), strict=True)]


def mirror(local: Path, target_uri: str, options: dict[str, Any]) -> None:
    from pipeline.storage import Storage

    target = Storage(target_uri, options)
    for path in sorted(p for p in local.rglob("*") if p.is_file()):
        target.upload(str(path), path.relative_to(local).as_posix())


def moto_bucket() -> tuple[Any, str, str]:
    """(server, endpoint, bucket): a ThreadedMotoServer on 127.0.0.1 with one fresh bucket."""
    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint, bucket = f"http://{host}:{port}", f"loader-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **KEYS).create_bucket(Bucket=bucket)
    return server, endpoint, bucket


def rate(runs: list[dict[str, float]]) -> dict[str, Any]:
    rates = [r["samples"] / r["seconds"] for r in runs]
    return figure(
        round(statistics.median(rates), 1),
        "samples/s",
        epochs_s=[round(r["seconds"], 2) for r in runs],
        samples_per_epoch=runs[0]["samples"],
        first_epoch=round(runs[0]["samples"] / runs[0]["seconds"], 1),  # incl. starting the workers
    )


def ratios(figures: dict[str, dict[str, Any]]) -> dict[str, float]:
    """crisp_over_litdata_<source>_<n>w for every cell both contenders measured."""
    cells = [k[len("crisp_") :] for k in figures if k.startswith("crisp_") and f"litdata_{k[6:]}" in figures]
    return {
        f"crisp_over_litdata_{c}": round(figures[f"crisp_{c}"]["value"] / figures[f"litdata_{c}"]["value"], 3)
        for c in cells
    }


def decision(ratio: dict[str, float], parity: float = PARITY) -> str:
    """Issue 5's choice, direct shard reads or a LitData `optimize` copy, from the S3 ratios."""
    s3 = {k.removeprefix("crisp_over_litdata_"): v for k, v in ratio.items() if "_s3_" in k}
    if not s3:
        return "Decision pending: no LitData figure from S3 to compare with."
    shown = ", ".join(f"{cell} {value}" for cell, value in sorted(ratio.items()))
    if min(s3.values()) >= parity:
        return (
            f"Decision: read the pair shards directly (no LitData optimize copy): Crisp/LitData = {shown}; "
            f"every S3 cell is at least {parity} (within noise or faster), so a second, converted copy of "
            "the data and a conversion step per partition would buy no speed."
        )
    worst = min(s3, key=s3.get)
    return (
        f"Direct shard reads are slower than LitData from S3 ({worst}: {s3[worst]}; all: {shown}): "
        "profile Crisp's loader (cProfile of its 0-worker child) before choosing."
    )


def prepare(work: Path, config: LoaderBenchConfig, endpoint: str, bucket: str) -> dict[str, Any]:
    """Pairs root (local + S3 mirror) and, when LitData is usable, its optimized copy (local + S3)."""
    photos = sorted(p for p in config.photos.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    pairs = build_pairs_root(work / "root", photos[: config.photo_limit])
    tiles = train_tiles(work / "root", config.patch)
    shards = [p.stat().st_size for p in (work / "root" / "pairs").rglob("*.tar")]
    pairs.update(shards=len(shards), shard_mb=[round(size / 2**20, 1) for size in shards])
    s3 = {"key": "testing", "secret": "testing", "client_kwargs": {"endpoint_url": endpoint}}
    mirror(work / "root" / "pairs", f"s3://{bucket}/crisp/pairs", s3)
    out = {
        "pairs": figure(
            pairs.pop("pairs"),
            "pairs",
            train_tiles=len(tiles),
            photos=len(photos[: config.photo_limit]),
            **pairs,
        ),
        "crisp": {"local": ((work / "root").as_uri(), {}), "s3": (f"s3://{bucket}/crisp", s3)},
        "litdata": {},
        "error": ensure_litdata(),
    }
    if not out["error"]:
        spec = {"tiles": tiles, "output_dir": str(work / "litdata"), "chunk_bytes": config.chunk_bytes}
        try:
            out["optimize_s"] = run_contender("optimize", spec)["seconds"]
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            out["error"] = f"litdata.optimize failed: {exc}"
            return out
        mirror(work / "litdata", f"s3://{bucket}/litdata", s3)
        out["litdata"] = {
            "local": (str(work / "litdata"), {}),
            "s3": (f"s3://{bucket}/litdata", {"endpoint_url": endpoint, **KEYS}),
        }
    return out


def served(source: str, call):
    """call()'s dict, plus, from S3, the CPU seconds this process (the moto server: the parent only waits
    meanwhile) spent serving it, cold and warm epochs together: moto reads the whole object per ranged GET."""
    before = sum(os.times()[:2])
    result = call()
    if source == "s3":
        result["server_cpu_s"] = round(sum(os.times()[:2]) - before, 2)
    return result


def measure(config: LoaderBenchConfig, prepared: dict[str, Any], work: Path) -> tuple[dict[str, Any], str]:
    """samples/s per contender, source and worker count, contenders interleaved cell by cell."""
    figures, error = {}, prepared["error"]
    common = {"epochs": config.epochs, "batch_size": config.batch_size, "patch": config.patch}
    for source, (root, options) in prepared["crisp"].items():
        for workers in config.workers:
            spec = {**common, "root": root, "options": options, "workers": workers}
            figures[f"crisp_{source}_{workers}w"] = served(
                source, lambda s=spec: rate(run_contender("crisp", s)["epochs"])
            )
            if error or source not in prepared["litdata"]:
                continue
            input_dir, lit_options = prepared["litdata"][source]
            spec = {
                **common,
                "input_dir": input_dir,
                "options": lit_options,
                "workers": workers,
                "cache_root": str(work),
                "warm_epochs": 1 if source == "s3" else 0,
            }
            try:
                result = served(source, lambda s=spec: run_contender("litdata", s))
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                error = f"LitData {source} {workers}w: {exc}"
                continue
            extra = {"server_cpu_s": result.pop("server_cpu_s")} if "server_cpu_s" in result else {}
            figures[f"litdata_{source}_{workers}w"] = {**rate(result["epochs"]), **extra}
            if "warm" in result:
                figures[f"litdata_{source}_{workers}w_warm_cache"] = rate(result["warm"])
    return figures, error


def main() -> None:
    config = LoaderBenchConfig.from_env()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="crisp-loader-bench-") as tmp:
        server, endpoint, bucket = moto_bucket()
        try:
            prepared = prepare(Path(tmp), config, endpoint, bucket)
            figures, error = measure(config, prepared, Path(tmp))
        finally:
            server.stop()
    ratio = ratios(figures)
    figures["pairs"] = prepared["pairs"]
    notes = [
        decision(ratio),
        f"{prepared['pairs']['train_tiles']} train tiles (HR up to 480 px as zstd .npy, LR PNG) of "
        f"{prepared['pairs']['photos']} photos in {SHARD_BYTES >> 20} MB pair shards; Crisp: SRDataModule "
        f"defaults (block reads of 16 pairs, 8 read threads per process); LitData 0.2.76 + obstore from "
        f"{SITE.relative_to(REPO)}, chunk_bytes {config.chunk_bytes}, optimize "
        f"{prepared.get('optimize_s', float('nan')):.1f} s; medians of {config.epochs} epoch(s) per cell, "
        "each timed from iter() to the last batch; Crisp's loader workers persist across epochs, LitData's "
        "on a local folder too (one StreamingDataLoader, persistent_workers=True); first_epoch = the rate "
        "of the epoch that starts them; S3 = moto ThreadedMotoServer in the parent; LitData S3 epochs start "
        "from an empty chunk cache, a new dataset and loader each, so its S3 workers start every epoch "
        "(_warm_cache: one more epoch on the filled cache). "
        "server_cpu_s = CPU the moto server spent on the cell: moto reads the whole object for every ranged "
        "GET, so each of Crisp's block reads costs it a copy of the whole pair shard (pairs.shard_mb); real "
        "S3 / MinIO do not.",
        f"load average before/after: {[round(x, 2) for x in load_before]} / "
        f"{[round(x, 2) for x in os.getloadavg()]} on {os.cpu_count()} cores (other processes were running).",
    ]
    if error:
        notes.append(f"LitData baseline incomplete: {error}")
    baseline = {k: v for k, v in figures.items() if k.startswith("litdata_")} or None
    write_result(
        "loader",
        figures,
        baseline=baseline,
        ratio=ratio or None,
        notes=" ".join(notes),
        targets={
            "every crisp_over_litdata cell": ">= 1.0 (issue 11, item 8)",
            **{f"{cell}_met": value >= 1.0 for cell, value in ratio.items()},
        },
    )


if __name__ == "__main__":
    main()
