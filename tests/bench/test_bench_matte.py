"""bench/bench_matte.py: the baselines on a synthetic studio composite, the settings from the environment,
and targets flagged missed when the model falls short (the u2netp baseline needs its wheel, installed by the
benchmark itself, so it is not exercised here)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from bench import bench_matte


@pytest.fixture
def composite():
    image = np.full((96, 96, 3), 255, np.uint8)
    image[20:76, 30:66] = (30, 60, 200)
    alpha = np.zeros((96, 96), np.uint8)
    alpha[20:76, 30:66] = 255
    return {"image": image, "alpha": alpha}


def test_the_classical_baselines_cut_a_product_off_white(composite):
    from training.report.matte import white_threshold

    scored = bench_matte.score({"white_threshold": white_threshold, "grabcut": bench_matte.grabcut},
                               [composite], ["solid"])  # fmt: skip
    assert scored["white_threshold"]["all"]["iou"] == 1.0
    assert scored["grabcut"]["all"]["iou"] > 0.9 and scored["grabcut"]["scene"] == {}


def test_the_config_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("CRISP_BENCH_QUICK", "1")
    quick = bench_matte.MatteBenchConfig.from_env()
    assert quick.photo_limit == 160 and quick.minutes == 2
    assert quick.data_overrides() == {"data.batch_size": 8, "data.crop": 192, "data.workers": 1}
    monkeypatch.delenv("CRISP_BENCH_QUICK")
    assert bench_matte.MatteBenchConfig.from_env().minutes == 30


def test_targets_are_flagged_missed_when_the_model_falls_short():
    def measures(iou, mae):
        return {"all": {"iou": iou, "mae": mae, "sad": 0, "grad": 0, "boundary_f": 0}, "scene": {"iou": iou},
                "seconds": 1.0}  # fmt: skip

    scored = {"model": measures(0.93, 0.03), "white_threshold": measures(0.6, 0.2), "grabcut": measures(0.8, 0.1),
              "u2netp": measures(0.95, 0.02)}  # fmt: skip
    run = {
        "result": SimpleNamespace(global_step=10),
        "call_seconds": 60.0,
        "val_curve": [],
        "load_samples": [],
    }
    _, _, ratio, targets = bench_matte.summarize(
        bench_matte.MatteBenchConfig(), scored, run, 120.0, 4, ["scene"] * 4
    )
    assert not targets["test_iou"]["met"] and not targets["iou_above_every_baseline"]["met"]
    assert (
        targets["latency_ms"]["met"]
        and targets["scene_iou"]["met"]
        and ratio["iou_model_minus_u2netp"] == -0.02
    )
