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


def _push_reference_sets(storage) -> dict[str, str]:
    """Set5 onto the demo root when the shared benchmark data is beside the checkout (the pair test split
    is always scored): the gates then read it from the root, as a deployment does."""
    from pipeline.reference_data import benchmark_dir
    from pipeline.reference_sets import PREFIX, push

    set5 = benchmark_dir("Set5")
    if not set5.is_dir():
        return {}
    push(storage, "Set5", set5)
    return {"Set5": f"{PREFIX}/Set5"}


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

    config, trained = _train(storage, partition, steps)
    released = _release(storage, config, trained, partition)
    champion = released.champion
    upscaled = _upscale_sample(storage, champion if champion is not None else released.version)
    result = DemoResult(
        root=storage.root,
        partition=partition,
        ingest=ingest,
        pairs=pairs.pairs,
        checkpoint=released.checkpoint,
        verdict_passed=released.verdict.passed,
        verdict_reasons=list(released.verdict.reasons),
        version=released.version,
        champion=champion,
        upscaled=upscaled,
        report=released.report,
        seconds=round(time.perf_counter() - started, 1),
    )
    storage.write_bytes("demo/result.json", json.dumps(asdict(result), indent=1).encode())
    return result


def _train(storage, partition: str, steps: int):
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
    _say(f"    checkpoint {result.best_ckpt_uri or result.last_ckpt_uri}; "
         f"val PSNR-Y {result.metrics.get('val/psnr_y', float('nan')):.2f} dB")  # fmt: skip
    return config, result


def _release(storage, config, trained, partition: str):
    """The release flow every entry point uses (training/release.py), under the demo's gate policy."""
    from crisp.demo_catalog import photo_folder
    from training.policy import GatePolicy
    from training.registry import RegistryConfig
    from training.release import ReleaseTarget, release

    policy = GatePolicy(benchmarks=_push_reference_sets(storage))
    target = ReleaseTarget(
        model_name=MODEL_NAME,
        storage=storage,
        registry=RegistryConfig(root=storage.root, policy=policy),
        recipe=RECIPE,
        partitions=[partition],
        photos=[photo_folder() / "coffee.png", photo_folder() / "rocket.jpg"],
    )
    _say(f"4/7 validate: gates on {', '.join([*policy.benchmarks, 'pair test split'])}")
    released = release(target, config.model_dump(mode="json"), asdict(trained), run_name="demo")
    for score in released.verdict.scores:
        _say(f"    {score.name}: PSNR-Y {score.psnr_y:.2f} dB vs bicubic {score.bicubic_psnr_y:.2f} dB")
    _say(
        f"    verdict: {'PASS' if released.verdict.passed else 'FAIL'} {'; '.join(released.verdict.reasons)}"
    )
    _say(f"5/7 registry: {MODEL_NAME} version {released.version} @challenger (MLflow run {released.run_id})")
    if released.promoted:
        _say(f"6/7 promote: version {released.version} is now @champion")
    else:  # a rerun's model may not beat the champion of an earlier run: that one keeps serving
        _say(f"6/7 promote refused, @champion stays at version {released.champion}: {released.refusal}")
    return released


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
