"""The end-to-end demo: catalog -> ingest -> pairs -> train -> validate -> register -> promote -> upscale,
then the quality model: distortion grid -> train -> release -> the product ranking, then background
removal: matte composites -> train -> release -> `crisp cutout` of a held-out photo (crisp/demo_matte.py).

In: a storage root (default `file://./demo-out`), optionally a real catalog feed URI instead of the embedded
one, and training step budgets (SR, quality). Out: a committed images partition, a pairs partition, a
trained checkpoint, a registry version under `@champion` (when its verdict passes), an upscaled sample with
a side-by-side and an HTML report; then a `pairs/quality_grid` partition, a `crisp-quality` version with
its report (the product ranking as contact sheets) and every accepted photo scored and ranked within its
product; a `crisp-matte` version and the cut-out of a held-out photo (RGBA and on pure white); `run_demo`
returns where each one is. Every step calls the same functions as the CLI, the
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
QUALITY_MODEL = "crisp-quality"
QUALITY_CANVAS = 192  # a small canvas keeps the demo's grid and training to about a minute each
STEPS = 11  # the demo's numbered steps


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
    quality: dict[str, Any]  # the quality model: version, champion, verdict, report, the product ranking
    matte: dict[
        str, Any
    ]  # the matte model: version, champion, verdict, report, the cut-out ({}: not trained)
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
    root: str = "file://./demo-out",
    catalog: str | None = None,
    steps: int = 1000,
    allow_hosts: tuple = (),
    quality_steps: int = 250,
    matte_steps: int = 300,
) -> DemoResult:
    from crisp.demo_catalog import StaticServer, photo_folder, write_feed
    from crisp.demo_matte import run_matte
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
    # few products: give val/test enough of them to measure on
    ingest_config = IngestConfig(
        crawl=CrawlConfig(allow_hosts=["127.0.0.1", *allow_hosts]),
        split=SplitConfig(train=0.45, val=0.3, test=0.25),
    )

    _say(f"root {storage.root}, partition {partition}")
    if catalog is None:
        with (
            StaticServer(photo_folder()) as server,
            tempfile.TemporaryDirectory(prefix="crisp-demo-") as work,
        ):
            feed = Path(work) / "feed.csv"
            rows = write_feed(feed, server.url)
            _say(
                f"1/{STEPS} ingest: {rows} catalog rows served from {server.url} (real photos from scikit-image)"
            )
            summary = ingest_partition(str(feed), partition, storage, ingest_config)
    else:
        _say(f"1/{STEPS} ingest: feed {catalog}")
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

    _say(f"2/{STEPS} pairs: {RECIPE} on a Dask LocalCluster")
    pairs = build_pairs(storage, RECIPE, [partition], PairsConfig(recipes=[RECIPE], hr_tile=384, min_tile=96))
    _say(f"    {pairs.pairs} pairs")

    config, trained = _train(storage, partition, steps)
    released = _release(storage, config, trained, partition)
    champion = released.champion
    upscaled = _upscale_sample(storage, champion if champion is not None else released.version)
    quality = _quality(storage, partition, quality_steps)
    _say(
        f"11/{STEPS} background removal: matte composites -> MatteNet for {matte_steps} steps -> release -> cut-out"
    )
    matte = run_matte(storage, partition, matte_steps, _say)
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
        quality=quality,
        matte=matte,
        seconds=round(time.perf_counter() - started, 1),
    )
    storage.write_bytes("demo/result.json", json.dumps(asdict(result), indent=1).encode())
    return result


def _train(storage, partition: str, steps: int):
    from training.fit.train import load_train_config, train

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
    _say(f"3/{STEPS} train: ESPCN x4 for {steps} steps on CPU (Lightning)")
    result = train(config)
    _say(f"    checkpoint {result.best_ckpt_uri or result.last_ckpt_uri}; "
         f"val PSNR-Y {result.metrics.get('val/psnr_y', float('nan')):.2f} dB")  # fmt: skip
    return config, result


def _release(storage, config, trained, partition: str):
    """The release flow every entry point uses (training/registry/release.py), under the demo's gate policy."""
    from crisp.demo_catalog import photo_folder
    from training.gates.policy import GatePolicy
    from training.registry.release import ReleaseTarget, release
    from training.registry.versions import RegistryConfig

    policy = GatePolicy(benchmarks=_push_reference_sets(storage))
    target = ReleaseTarget(
        model_name=MODEL_NAME,
        storage=storage,
        registry=RegistryConfig(root=storage.root, policy=policy),
        recipe=RECIPE,
        partitions=[partition],
        photos=[photo_folder() / "coffee.png", photo_folder() / "rocket.jpg"],
    )
    _say(f"4/{STEPS} validate: gates on {', '.join([*policy.benchmarks, 'pair test split'])}")
    released = release(target, config.model_dump(mode="json"), asdict(trained), run_name="demo")
    for score in released.verdict.scores:
        _say(f"    {score.name}: PSNR-Y {score.psnr_y:.2f} dB vs bicubic {score.bicubic_psnr_y:.2f} dB")
    _say(
        f"    verdict: {'PASS' if released.verdict.passed else 'FAIL'} {'; '.join(released.verdict.reasons)}"
    )
    _say(
        f"5/{STEPS} registry: {MODEL_NAME} version {released.version} @challenger (MLflow run {released.run_id})"
    )
    if released.promoted:
        _say(f"6/{STEPS} promote: version {released.version} is now @champion")
    else:  # a rerun's model may not beat the champion of an earlier run: that one keeps serving
        _say(f"6/{STEPS} promote refused, @champion stays at version {released.champion}: {released.refusal}")
    return released


def _upscale_sample(storage, version: int) -> str:
    from PIL import Image

    from crisp.commands.upscale import write_side_by_side
    from crisp.demo_catalog import photo_folder
    from training.registry.versions import RegistryConfig, load_model
    from training.serve.upscale import upscale_image

    model, meta = load_model(f"models:/{MODEL_NAME}/{version}", RegistryConfig(root=storage.root))
    sample = Image.open(photo_folder() / "chelsea.png").convert("RGB")
    out = upscale_image(model, sample, meta.scale)
    with tempfile.TemporaryDirectory(prefix="crisp-upscaled-") as tmp:
        out_dir = Path(tmp)
        Image.fromarray(out).save(out_dir / "chelsea_x4.png")
        write_side_by_side(sample, out, meta.scale, out_dir / "chelsea_side_by_side.png")
        for name in ("chelsea_x4.png", "chelsea_side_by_side.png"):
            storage.upload(str(out_dir / name), f"demo/upscaled/{name}")
    _say(f"7/{STEPS} upscale: chelsea.png {sample.size} -> {out.shape[1]}x{out.shape[0]}")
    return storage.uri("demo/upscaled/chelsea_side_by_side.png")


def _quality(storage, partition: str, steps: int) -> dict[str, Any]:
    """The quality model on the same partition: the distortion grid, a short training, the release under
    the demo's policy, then every accepted photo scored and ranked within its product."""
    from pipeline.pairs.config import PairsConfig
    from pipeline.pairs.job import build_pairs
    from training.fit.train import TrainConfig, train
    from training.gates.quality_gates import QualityGatePolicy
    from training.registry.release import ReleaseTarget, release
    from training.registry.versions import RegistryConfig

    _say(f"8/{STEPS} quality grid: 15 distortion families x 5 levels per photo, {QUALITY_CANVAS}-px canvases")
    grid = PairsConfig(recipes=["quality_grid"], quality_grid={"canvas_long_side": QUALITY_CANVAS})
    built = build_pairs(storage, "quality_grid", [partition], grid)
    _say(f"    {built.pairs} samples")
    config = TrainConfig(
        task="quality",
        data={"root": storage.root, "partitions": [partition], "crop": 128, "workers": 0},
        optim={"lr": 2e-3, "warmup_steps": 20},
        trainer={"max_steps": steps, "val_check_interval": max(steps // 2, 1), "accelerator": "cpu"},
        output=storage.uri("runs/demo-quality"),
        resume="never",
    )
    _say(f"9/{STEPS} train + release: QualityNet for {steps} steps (regression + in-reference ranking)")
    trained = train(config)
    # The demo's policy: a few hundred steps on ~20 photos rank well but not at the deployment's bar
    # (settings gates.quality); the same gates run, with demo thresholds.
    policy = QualityGatePolicy(min_srcc=0.5, min_family_srcc=-1.0, min_pair_accuracy=0.6)
    target = ReleaseTarget(
        model_name=QUALITY_MODEL,
        storage=storage,
        registry=RegistryConfig(root=storage.root, experiment="crisp-quality", policy=policy),
        recipe="quality_grid",
        partitions=[partition],
        task="quality",
    )
    released = release(target, config.model_dump(mode="json"), asdict(trained), run_name="demo")
    metrics = released.verdict.metrics
    _say(f"    val grid: SRCC {metrics.get('srcc', float('nan')):.3f}, pair accuracy "
         f"{metrics.get('pair_accuracy', float('nan')):.3f}; {QUALITY_MODEL} v{released.version}, "
         f"@champion = {released.champion}")  # fmt: skip
    if not released.promoted:  # the ranking below still shows what the candidate does
        _say(f"    not promoted ({released.refusal}): the demo catalog's dozen training photos (textures, "
             "scans, a silhouette) are too few to generalize from; bench/results/quality.json has the "
             "figures on product photos")  # fmt: skip
    ranking = _rank_products(storage, partition, released.champion or released.version)
    return {
        "version": released.version,
        "champion": released.champion,
        "verdict_passed": released.verdict.passed,
        "srcc": metrics.get("srcc"),
        "pair_accuracy": metrics.get("pair_accuracy"),
        "report": released.report,
        "ranking": ranking,
    }


def _rank_products(storage, partition: str, version: int) -> dict[str, list[dict[str, Any]]]:
    """Every accepted photo of the partition scored by the data side (ONNX, what ingest runs), ranked
    within its product: {product_id: [{image_id, score, rank}, best first]}."""
    import numpy as np

    from crisp.commands.quality import collect_items
    from crisp.commands.upscale import decode_input
    from pipeline.quality import QualityScorer, registry_tracking_uri, resolve_model_file

    with tempfile.TemporaryDirectory(prefix="crisp-demo-quality-") as tmp:
        model = resolve_model_file(
            f"models:/{QUALITY_MODEL}/{version}", Path(tmp), registry_tracking_uri(storage.root)
        )
        scorer = QualityScorer(model.path)
    ranking: dict[str, list[dict[str, Any]]] = {}
    for item in collect_items([f"images/{partition}"], lambda: storage):
        score = scorer.score_rgb(np.asarray(decode_input(item.load())))
        ranking.setdefault(item.product_id, []).append({"image_id": item.image_id, "score": round(score, 3)})
    for photos in ranking.values():
        photos.sort(key=lambda p: (-p["score"], p["image_id"]))
        for rank, photo in enumerate(photos, 1):
            photo["rank"] = rank
    ordered = sorted(ranking.items(), key=lambda kv: -kv[1][0]["score"])
    best, worst = ordered[0], ordered[-1]
    _say(f"10/{STEPS} score: {sum(len(v) for v in ranking.values())} photos of {len(ranking)} products; "
         f"best {best[0]} ({best[1][0]['score']:.2f}), lowest {worst[0]} ({worst[1][0]['score']:.2f})")  # fmt: skip
    for product, photos in ordered:
        if len(photos) > 1:
            _say(
                f"    {product}: "
                + ", ".join(f"#{p['rank']} {p['image_id'][:8]} {p['score']:.2f}" for p in photos)
            )
    return dict(ordered)
