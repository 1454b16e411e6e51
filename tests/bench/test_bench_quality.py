"""Tests of the quality benchmark's own pieces on tiny real inputs: config, photo choice, the schedule, the
heuristic baseline, the metrics, the baseline worker, the latency probe and the met/missed summary."""

from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from bench import bench_quality as bq
from pipeline.distort import distort, grid_params, quality_canvas
from pipeline.distort.families import LEVELS

PHOTOS = ("lt01.jpg", "luma-foam-roller.jpg", "mh01-black_main.jpg", "wb01-black_main.jpg")
CANVAS = 192


def canvas(product_photos, name: str) -> np.ndarray:
    with Image.open(product_photos / name) as image:
        return quality_canvas(np.asarray(image.convert("RGB")), CANVAS)


def graded(product_photos, name: str, family: str) -> list[np.ndarray]:
    """The pristine canvas of `name` and `family` at levels 1..5 (the grid's own params)."""
    pristine = canvas(product_photos, name)
    return [pristine] + [distort(pristine, grid_params(name, family, lv, 1)) for lv in range(1, LEVELS + 1)]


def test_config_reads_budget_families_overrides_and_root_from_env(monkeypatch, tmp_path):
    monkeypatch.setenv("CRISP_BENCH_QUALITY_MINUTES", "2")
    monkeypatch.setenv("CRISP_BENCH_PHOTOS", "30")
    monkeypatch.setenv("CRISP_BENCH_QUALITY_FAMILIES", "gaussian_blur, jpeg")
    monkeypatch.setenv("CRISP_BENCH_QUALITY_SET", "optim.lr=2e-3; data.crop=160")
    monkeypatch.setenv("CRISP_BENCH_QUALITY_ROOT", str(tmp_path))
    config = bq.QualityBenchConfig.from_env()
    assert config.minutes == 2.0 and config.photo_limit == 30 and config.root == tmp_path
    assert config.families == ("gaussian_blur", "jpeg")
    assert config.overrides == ("optim.lr=2e-3", "data.crop=160")
    assert config.fit_seconds == pytest.approx(120 - config.startup_reserve_s) and config.fit_seconds > 0
    for name in ("MINUTES", "FAMILIES", "SET", "ROOT"):
        monkeypatch.delenv(f"CRISP_BENCH_QUALITY_{name}")
    monkeypatch.delenv("CRISP_BENCH_PHOTOS")
    default = bq.QualityBenchConfig.from_env()
    assert default.minutes == 30.0 and default.families is None and default.root is None
    assert default.canvas_long_side == 384 and default.latency_runs >= 50
    with pytest.raises(ValueError, match="raise minutes"):
        _ = bq.QualityBenchConfig(minutes=0.5).fit_seconds


def test_the_training_config_is_the_task_default_on_the_bench_grid(tmp_path):
    config = bq.QualityBenchConfig(val_every=50, overrides=("optim.lr=2e-3",))
    tc = bq.train_config(config, "file:///grid-root", (tmp_path / "run").as_uri())
    assert (
        tc.task == "quality" and tc.data.root == "file:///grid-root" and tc.data.partitions == [bq.PARTITION]
    )
    assert tc.trainer.accelerator == "cpu" and tc.trainer.val_check_interval == 50 and tc.resume == "never"
    assert tc.optim.lr == 2e-3  # the override wins over the YAML / defaults
    assert tc.model.arch == "quality_net"
    assert tc.trainer.max_steps == bq.MAX_STEPS_OUT_OF_REACH  # the 30-minute Timer ends the run
    capped = bq.train_config(
        bq.QualityBenchConfig(overrides=("trainer.max_steps=3000",)), "file:///g", "file:///r"
    )
    assert capped.trainer.max_steps == 3000


def test_photo_choice_keeps_every_split_and_is_spread_over_the_catalogue():
    config = bq.QualityBenchConfig(photo_limit=30)
    photos = config.select_photos()
    assert photos == config.select_photos() and len(photos) == len(set(photos)) == 30
    counts = {s: sum(split == s for *_, split in photos) for s in ("train", "val", "test")}
    assert counts == {"train": 24, "val": 3, "test": 3}
    everything = bq.QualityBenchConfig().select_photos()
    assert len(everything) == 476 and all(path.is_file() for _, path, _ in photos)
    order = [p for p, *_ in everything]
    train = [order.index(sku) for sku, _, split in photos if split == "train"]
    assert train[-1] > 0.8 * len(order)  # not the first photos of the catalogue only


def test_lr_follows_whichever_of_clock_and_steps_is_further():
    schedule = bq.budget_schedule(seconds=100.0, warmup_steps=10, min_lr_ratio=0.0, max_steps=110)
    schedule.started = time.monotonic()
    assert schedule.factor(4) == pytest.approx(0.5)  # warmup by steps
    assert schedule.factor(60) == pytest.approx(0.5, abs=1e-2)  # half the steps, no time gone: steps lead
    schedule.started = time.monotonic() - 50.0
    assert schedule.factor(10) == pytest.approx(
        0.5, abs=1e-2
    )  # half the time gone, no steps: the clock leads
    assert schedule.factor(200) == pytest.approx(0.0)  # past max_steps: the floor


def test_val_curve_records_srcc_and_pair_accuracy_outside_sanity_checks():
    import torch

    schedule = bq.budget_schedule(seconds=100.0, warmup_steps=0, min_lr_ratio=0.0, max_steps=10)
    metrics = {"val/srcc": torch.tensor(0.512345), "val/pair_acc": torch.tensor(0.75)}
    schedule.on_validation_end(
        SimpleNamespace(callback_metrics=metrics, sanity_checking=False, global_step=7), None
    )
    schedule.on_validation_end(
        SimpleNamespace(callback_metrics=metrics, sanity_checking=True, global_step=8), None
    )
    assert schedule.val_curve == [(7, 0.5123, 0.75)]


def test_heuristic_fitted_on_some_photos_ranks_blur_and_jpeg_on_another(product_photos):
    from pipeline.clean.quality import measure

    def metrics(images):
        found = [measure(image, "png") for image in images]
        return {k: np.array([getattr(m, k) for m in found]) for k in bq.HEURISTIC_METRICS}

    fit_images, fit_targets = [], []
    for name in PHOTOS[:3]:
        for family in ("gaussian_blur", "jpeg"):
            fit_images += graded(product_photos, name, family)
            fit_targets += [5.0 - level for level in range(LEVELS + 1)]
    fit = bq.fit_heuristic(metrics(fit_images), np.array(fit_targets))
    assert fit["weights"]["sharpness"] > 0.3  # blur and heavy JPEG both remove Laplacian energy
    assert all(w == 0 or abs(w) >= bq.HEURISTIC_MIN_SRCC for w in fit["weights"].values())
    for family in ("gaussian_blur", "jpeg"):  # a photo the fit never saw
        scores = bq.heuristic_scores(fit, metrics(graded(product_photos, PHOTOS[3], family)))
        assert scores.min() >= -1.0 and scores.max() <= 1.0
        assert scores[0] > scores[-1], (family, scores)
        assert np.corrcoef(scores, -np.arange(LEVELS + 1))[0, 1] > 0.5, (family, scores)


def members(targets, groups, families):
    keys = [f"s{i:03d}" for i in range(len(targets))]
    return {"targets": np.array(targets, dtype=float), "groups": np.array(groups), "families": list(families),
            "keys": keys, "rows": list(range(len(targets)))}  # fmt: skip


def test_metrics_of_a_perfect_a_reversed_and_a_partial_scorer():
    targets = [5.0, 4.0, 3.0, 2.0, 1.0] * 2
    m = members(
        targets, [0] * 5 + [1] * 5, ["pristine"] + ["jpeg"] * 4 + ["pristine"] + ["gaussian_blur"] * 4
    )
    perfect = bq.score_metrics(np.array(targets), m, threshold=2.5)
    assert perfect["srcc"] == 1.0 and perfect["pair_accuracy"] == 1.0 and perfect["reject_auc"] == 1.0
    assert perfect["by_family"] == {"gaussian_blur": 1.0, "jpeg": 1.0} and perfect["coverage"] == 1.0
    reversed_ = bq.score_metrics(-np.array(targets), m, threshold=2.5)  # a lower-is-better score, not negated
    assert reversed_["srcc"] == -1.0 and reversed_["pair_accuracy"] == 0.0 and reversed_["reject_auc"] == 0.0
    partial = np.array(targets)
    partial[[1, 6]] = np.nan  # NIQE leaves flat canvases undefined
    found = bq.score_metrics(partial, m, threshold=2.5)
    assert found["coverage"] == 0.8 and found["samples"] == 8.0 and found["srcc"] == 1.0
    assert bq.score_metrics(np.full(10, np.nan), m, threshold=2.5)["srcc"] is None  # JSON-safe


def test_baseline_worker_scores_real_canvases_and_reports_undefined_niqe(product_photos):
    from bench.iqa_baselines import IQAPackagesUnavailable, ensure_iqa_packages

    try:
        ensure_iqa_packages()
    except IQAPackagesUnavailable as error:
        pytest.skip(str(error))
    photo = canvas(product_photos, PHOTOS[0])
    flat = np.full((CANVAS, CANVAS, 3), 255, dtype=np.uint8)
    images = {0: photo, 1: distort(photo, grid_params("x", "gaussian_blur", 5, 1)), 2: flat}
    bq._pool_reader(SimpleNamespace(read=lambda rows: [images[r] for r in rows]))
    (sharp, _, sharp_m), (blurred, _, blur_m), (_, flat_niqe, _) = bq._baseline_chunk([0, 1, 2])
    assert np.isfinite([sharp, blurred]).all() and blurred > sharp  # BRISQUE: lower = better
    assert np.isnan(flat_niqe)  # no textured patch: undefined, kept as NaN, counted as not covered
    assert blur_m["sharpness"] < sharp_m["sharpness"] and set(sharp_m) == set(bq.HEURISTIC_METRICS)


def test_latency_runs_the_exported_model_on_512_px_photos(product_photos, tmp_path):
    from training.archs.quality_net import build_quality_arch
    from training.serve.export_onnx import export_onnx

    exported = export_onnx(build_quality_arch("quality_net"), 384, 1e-4)
    assert exported.passed, exported.error
    path = tmp_path / "model.onnx"
    path.write_bytes(exported.data)
    found = bq.latency_ms(path, [product_photos / p for p in PHOTOS[:2]], runs=50)
    assert found["runs"] == 50 and found["photos"] == 2 and 0 < found["median"] <= found["p90"]
    assert all(max(int(side) for side in size.split("x")) == 512 for size in found["sizes"])


def scored(srcc, family, pair, auc=0.9):
    metrics = {"srcc": srcc, "pair_accuracy": pair, "reject_auc": auc, "by_family": family, "coverage": 1.0}
    return metrics


def test_summary_flags_every_target_on_the_test_split():
    split = {"references": 3, "canvases": 30, "model_seconds": 1.0, "baseline_seconds": 2.0}
    test = {**split, "metrics": {"model": scored(0.93, {"jpeg": 0.85, "gaussian_blur": 0.78}, 0.95),
                                 "brisque": scored(0.6, {}, 0.7), "niqe": scored(None, {}, None),
                                 "heuristic": scored(0.75, {}, 0.8)}}  # fmt: skip
    val = {**split, "metrics": {name: scored(0.1, {}, 0.5) for name in ("model", *bq.BASELINES)}}
    result = SimpleNamespace(global_step=100, best_ckpt_uri="file:///best.ckpt")
    config = SimpleNamespace(data=SimpleNamespace(groups_per_batch=4, samples_per_group=8))
    run = {
        "result": result,
        "config": config,
        "call_seconds": 29 * 60.0,
        "step_seconds": 1600.0,
        "val_curve": [],
    }
    latency = {"median": 16.0, "p90": 20.0, "runs": 60, "photos": 10, "sizes": ["512x384"]}
    missing = {"measured": False, "why": "not merged"}
    figures, targets = bq.summarize(val, test, run, latency, missing, SimpleNamespace(max_abs_diff=1e-6))
    assert targets["srcc"]["met"] and not targets["family_srcc"]["met"]  # judged on test, not on val
    assert targets["family_srcc"]["worst_family"] == "gaussian_blur" and targets["family_srcc"]["missed"] == [
        "gaussian_blur"
    ]
    assert (
        targets["pair_accuracy"]["met"]
        and targets["train_minutes"]["met"]
        and not targets["latency_ms"]["met"]
    )
    gain = targets["srcc_over_best_baseline"]
    assert gain["best_baseline"] == "heuristic" and gain["measured"] == pytest.approx(0.18) and gain["met"]
    assert targets["ingest_scoring_ratio"] == {
        "target": 0.8,
        "measured": None,
        "met": False,
        "why": "not merged",
    }
    assert figures["test_model"]["value"] == 0.93 and figures["val_model"]["value"] == 0.1
    assert figures["ingest_scoring_ratio"]["value"] is None and figures["train_call_minutes"]["steps"] == 100


def test_grid_canvases_read_what_the_training_reader_reads_also_after_pickling(grid_root):
    import pickle

    from training.data.quality import MemberReader, load_quality_catalog

    catalog = load_quality_catalog(grid_root, "all")
    rows = [0, 5, len(catalog.rows) - 1]  # members of different groups, straddling shards (64 KiB ones)
    expected = MemberReader(catalog.rows, grid_root.root, grid_root.options).read(rows)
    reader = bq.GridCanvases(catalog.rows, grid_root.root, grid_root.options)
    for found in (reader.read(rows), pickle.loads(pickle.dumps(reader)).read(rows)):
        assert all(np.array_equal(a, b) for a, b in zip(found, expected, strict=True))
    members = bq.split_members(catalog, "val")
    assert members["references"] == 2 and len(members["rows"]) == len(members["targets"]) == 22
    assert set(members["groups"].tolist()) == {0, 1} and "pristine" in members["families"]
