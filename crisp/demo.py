"""The end-to-end demo: catalog -> ingest -> pairs -> train -> validate -> register -> promote -> upscale.

In: a storage root (default `file://./demo-out`), optionally a real catalog feed URI instead of the embedded
one, and a training step budget. Out: a committed images partition, a pairs partition, a trained checkpoint,
a registry version under `@champion` (when its verdict passes), an upscaled sample with a side-by-side, and
an HTML report; `run_demo` returns where each one is. Every step calls the same functions as the CLI, the
DAGs and the tests; this module only wires them together on the embedded defaults.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

MODEL_NAME = "crisp-sr-x4"
RECIPE = "bicubic_x4"


@dataclass
class DemoResult:
    root: str
    partition: str
    ingest: dict[str, Any]
    pairs: int
    checkpoint: str
    verdict_passed: bool
    verdict_reasons: list[str]
    version: int
    champion: int | None
    upscaled: str
    report: str
    seconds: float


def _say(message: str) -> None:
    print(f"[crisp demo] {message}", flush=True)


def _benchmarks() -> dict[str, Path]:
    """Set5 when the shared benchmark data is beside the checkout; the pair test split is always used."""
    from pipeline.reference_data import benchmark_dir

    set5 = benchmark_dir("Set5")
    return {"Set5": set5} if set5.is_dir() else {}


def run_demo(
    root: str = "file://./demo-out", catalog: str | None = None, steps: int = 1500, allow_hosts: tuple = ()
) -> DemoResult:
    from crisp.demo_catalog import StaticServer, photo_folder, write_feed
    from pipeline.crawl import CrawlConfig
    from pipeline.ingest.config import IngestConfig
    from pipeline.ingest.run import ingest_partition
    from pipeline.ingest.split import SplitConfig
    from pipeline.pairs.config import PairsConfig
    from pipeline.pairs.job import build_pairs
    from pipeline.storage import Storage

    started = time.perf_counter()
    storage = Storage(root)
    partition = datetime.now(UTC).date().isoformat()
    work = Path(tempfile.mkdtemp(prefix="crisp-demo-"))
    # few products: give val/test enough of them to measure on
    ingest_config = IngestConfig(
        crawl=CrawlConfig(allow_hosts=["127.0.0.1", *allow_hosts]),
        split=SplitConfig(train=0.6, val=0.2, test=0.2),
    )

    _say(f"root {storage.root}, partition {partition}")
    if catalog is None:
        with StaticServer(photo_folder()) as server:
            feed = work / "feed.csv"
            rows = write_feed(feed, server.url)
            _say(f"1/7 ingest: {rows} catalog rows served from {server.url} (real photos from scikit-image)")
            summary = ingest_partition(str(feed), partition, storage, ingest_config)
    else:
        _say(f"1/7 ingest: feed {catalog}")
        summary = ingest_partition(catalog, partition, storage, ingest_config)
    ingest = {
        "inputs": summary.inputs,
        "accepted": summary.accepted,
        "duplicates": summary.duplicates,
        "rejected": dict(summary.rejected),
    }
    _say(
        f"    accepted {summary.accepted}, duplicates {summary.duplicates}, rejected {dict(summary.rejected)}"
    )

    _say(f"2/7 pairs: {RECIPE} on a Dask LocalCluster")
    pairs = build_pairs(storage, RECIPE, [partition], PairsConfig(recipes=[RECIPE], hr_tile=384, min_tile=96))
    _say(f"    {pairs.pairs} pairs")

    checkpoint, metrics_csv = _train(storage, partition, steps)
    verdict, version, champion = _gate_and_promote(storage, checkpoint, partition)
    upscaled = _upscale_sample(storage, champion if champion is not None else version)
    report = _report(storage, checkpoint, verdict, metrics_csv, partition)
    result = DemoResult(
        root=storage.root,
        partition=partition,
        ingest=ingest,
        pairs=pairs.pairs,
        checkpoint=checkpoint,
        verdict_passed=verdict.passed,
        verdict_reasons=list(verdict.reasons),
        version=version,
        champion=champion,
        upscaled=upscaled,
        report=report,
        seconds=round(time.perf_counter() - started, 1),
    )
    storage.write_bytes("demo/result.json", json.dumps(asdict(result), indent=1).encode())
    return result


def _train(storage, partition: str, steps: int) -> tuple[str, str]:
    from training.train import load_train_config, train

    config_path = Path(__file__).resolve().parents[1] / "training" / "configs" / "espcn_x4.yaml"
    overrides = [
        f"data.root={storage.root}",
        f"data.partitions=[{partition}]",
        "data.workers=0",
        "data.val_max_pairs=64",
        f"trainer.max_steps={steps}",
        f"trainer.val_check_interval={max(steps // 3, 1)}",
        "trainer.accelerator=cpu",
        f"output={storage.uri('runs/demo')}",
        "resume=never",
        "optim.warmup_steps=50",
    ]
    config = load_train_config(config_path, overrides)
    _say(f"3/7 train: ESPCN x4 for {steps} steps on CPU (Lightning)")
    result = train(config)
    checkpoint = result.best_ckpt_uri or result.last_ckpt_uri
    _say(f"    checkpoint {checkpoint}; val PSNR-Y {result.metrics.get('val/psnr_y', float('nan')):.2f} dB")
    return checkpoint, storage.uri("runs/demo/logs/metrics.csv")


def _gate_and_promote(storage, checkpoint: str, partition: str):
    from training.registry import PromotionRefused, RegistryConfig, list_versions, promote, register
    from training.validate import GateConfig, validate_checkpoint

    registry = RegistryConfig(root=storage.root)
    gates = GateConfig(
        benchmarks=_benchmarks(), pair_recipe=RECIPE, pair_partitions=[partition], pair_split="test"
    )
    _say(f"4/7 validate: gates on {', '.join([*gates.benchmarks, 'pair test split'])}")
    verdict = validate_checkpoint(
        checkpoint, gates, champion=f"models:/{MODEL_NAME}@champion", storage=storage, registry=registry
    )
    for score in verdict.scores:
        _say(f"    {score.name}: PSNR-Y {score.psnr_y:.2f} dB vs bicubic {score.bicubic_psnr_y:.2f} dB")
    _say(f"    verdict: {'PASS' if verdict.passed else 'FAIL'} {'; '.join(verdict.reasons)}")
    version = register(checkpoint, verdict, MODEL_NAME, config=registry)
    _say(f"5/7 registry: {MODEL_NAME} version {version} @challenger")
    champion = None
    try:
        promote(MODEL_NAME, version, registry)
        champion = version
        _say(f"6/7 promote: version {version} is now @champion")
    except PromotionRefused as exc:
        # a rerun's model may not beat the champion of an earlier run: that one keeps serving
        champion = next(
            (v.version for v in list_versions(MODEL_NAME, registry) if "champion" in v.aliases), None
        )
        _say(f"6/7 promote refused, @champion stays at version {champion}: {exc}")
    return verdict, version, champion


def _upscale_sample(storage, version: int) -> str:
    from PIL import Image

    from crisp.commands.upscale import write_side_by_side
    from crisp.demo_catalog import photo_folder
    from training.registry import RegistryConfig, load_model
    from training.upscale import upscale_image

    model, meta = load_model(f"models:/{MODEL_NAME}/{version}", RegistryConfig(root=storage.root))
    sample = Image.open(photo_folder() / "chelsea.png").convert("RGB")
    out = upscale_image(model, sample, meta.scale)
    out_dir = Path(tempfile.mkdtemp(prefix="crisp-upscaled-"))
    Image.fromarray(out).save(out_dir / "chelsea_x4.png")
    write_side_by_side(sample, out, meta.scale, out_dir / "chelsea_side_by_side.png")
    for name in ("chelsea_x4.png", "chelsea_side_by_side.png"):
        storage.upload(str(out_dir / name), f"demo/upscaled/{name}")
    _say(f"7/7 upscale: chelsea.png {sample.size} -> {out.shape[1]}x{out.shape[0]}")
    return storage.uri("demo/upscaled/chelsea_side_by_side.png")


def _report(storage, checkpoint: str, verdict, metrics_csv: str, partition: str) -> str:
    from crisp.demo_catalog import photo_folder
    from training.report import write_report
    from training.safe_load import safe_load

    model, _ = safe_load(checkpoint, storage_options=storage.options)
    html, _ = write_report(
        storage.uri("runs/demo/report"),
        verdict,
        model=model,
        metrics_csv=metrics_csv,
        photos=[photo_folder() / "coffee.png", photo_folder() / "rocket.jpg"],
        lineage={"images_partition": partition, "recipe": RECIPE},
        storage_options=storage.options,
    )
    return html
