"""bench/bench_restore.py: the test protocol (seeded 8-bit noise, JPEG q=10, RGB PSNR), the settings from
the environment, the sweep over other damage levels, and a target flagged missed when the model falls short
of its baseline."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from bench import bench_restore
from training.archs.ffdnet import FFDNet


def test_rgb_psnr_of_a_known_error():
    clean = np.full((8, 8, 3), 100, dtype=np.uint8)
    assert bench_restore.rgb_psnr(clean, clean) == 100.0
    off = clean + np.uint8(5)  # mse 25
    assert bench_restore.rgb_psnr(off, clean) == pytest.approx(10 * np.log10(255**2 / 25))


def test_the_noisy_input_is_seeded_8_bit_and_has_the_stated_sigma():
    clean = np.full((200, 200, 3), 128, dtype=np.uint8)
    first, again = bench_restore.noisy_input(clean, 3), bench_restore.noisy_input(clean, 3)
    assert first.dtype == np.uint8 and np.array_equal(first, again)
    assert not np.array_equal(first, bench_restore.noisy_input(clean, 4))
    assert np.std(first.astype(float) - 128) == pytest.approx(25.0, rel=0.03)


def test_the_jpeg_input_is_a_lossy_round_trip_of_the_same_size(shared_data):
    (name, clean), *_ = bench_restore.test_images(1)
    degraded = bench_restore.jpeg_input(clean)
    assert degraded.shape == clean.shape and 20 < bench_restore.rgb_psnr(degraded, clean) < 35, name


def test_unknown_tasks_are_refused(monkeypatch):
    monkeypatch.setenv("CRISP_BENCH_RESTORE_TASKS", "denoise,deblur")
    with pytest.raises(ValueError, match="unknown \\['deblur'\\]"):
        bench_restore.RestoreBenchConfig.from_env()
    monkeypatch.setenv("CRISP_BENCH_RESTORE_TASKS", "dejpeg")
    monkeypatch.setenv("CRISP_BENCH_QUICK", "1")
    quick = bench_restore.RestoreBenchConfig.from_env()
    assert quick.tasks == ("dejpeg",) and quick.test_images == 3 and quick.minutes == 1.0


def test_each_target_is_flagged_met_or_missed_against_its_baseline():
    config = bench_restore.RestoreBenchConfig(minutes=30)
    run = {"result": SimpleNamespace(global_step=10), "call_seconds": 100.0, "step_seconds": 90.0,
           "val_curve": [], "load_samples": [1.0]}  # fmt: skip

    def task(means):
        seconds = {"model": 1.0, "cbm3d": 2.0, "model_blind": 1.5}
        return {"scored": {"means": means, "rows": [], "seconds": seconds, "sweep": []},
                "run": run, "weights": "ema", "pairs": SimpleNamespace(pairs=5), "pairs_s": 1.0}  # fmt: skip

    results = {"denoise": task({"model": 30.0, "model_blind": 29.8, "input": 20.0, "cbm3d": 30.5}),
               "dejpeg": task({"model": 28.5, "input": 27.0})}  # fmt: skip
    ingest = SimpleNamespace(inputs=3, accepted=3)
    figures, baseline, ratio, targets, _ = bench_restore.summarize(config, results, ingest, 1.0, (0, 0, 0))
    # the target reads the model told the sigma (as CBM3D is); the blind call is reported beside it
    assert figures["denoise_model_blind_psnr"]["value"] == 29.8 and "dejpeg_model_blind_psnr" not in figures
    assert targets["denoise_model_minus_cbm3d_db"] == {"target": ">= -0.2", "measured": -0.5, "met": False}
    assert (
        targets["dejpeg_model_minus_jpeg_input_db"]["met"]
        and ratio["dejpeg_model_minus_jpeg_input_db"] == 1.5
    )
    assert set(baseline) == {"denoise", "dejpeg"} and targets["denoise_budget_minutes"]["met"]


@pytest.mark.parametrize("task", ["denoise", "dejpeg"])
def test_the_sweep_scores_every_other_level_and_an_identity_gains_nothing(task, shared_data):
    images = bench_restore.test_images(2)
    rows = bench_restore.sweep_task(task, torch.nn.Identity(), images)
    assert [row["level"] for row in rows] == list(bench_restore.SWEEPS[task])
    assert all(row["gain"] == 0.0 and row["model"] == row["input"] for row in rows)
    inputs = [row["input"] for row in rows]
    # more noise (denoise) or a higher JPEG quality (dejpeg) along the sweep
    assert inputs == sorted(inputs, reverse=task == "denoise") and len(set(inputs)) == len(inputs)


def test_a_conditioned_model_is_scored_told_the_true_level_and_blind():
    torch.manual_seed(0)
    net = FFDNet(features=8, depth=3, levels=["noise_sigma"]).eval()
    roles = bench_restore.served_as("denoise", net, 15.0)
    assert set(roles) == {"model", "model_blind"} and roles["model_blind"] is net
    assert float(roles["model"].values) == pytest.approx(15 / 75)
    assert float(bench_restore.served_as("denoise", net)["model"].values) == pytest.approx(25 / 75)
    assert set(bench_restore.served_as("dejpeg", net)) == {"model"}  # it reads no JPEG quality
    rows = bench_restore.sweep_task("denoise", net, bench_restore.test_images(1))
    assert [r["level"] for r in rows] == list(bench_restore.SWEEPS["denoise"])
    assert all({"model", "model_blind", "gain", "gain_blind"} <= set(r) for r in rows)
