"""Tests of the CPU training budget benchmark's own pieces: config, wall-clock schedule, val curve, spread."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
import torch

from bench.bench_train_cpu import TrainCpuBenchConfig, WallClockCosine, _spread


def test_config_reads_budget_and_root_from_env(monkeypatch, tmp_path):
    monkeypatch.setenv("CRISP_BENCH_TRAIN_MINUTES", "3")
    monkeypatch.setenv("CRISP_BENCH_TRAIN_ROOT", str(tmp_path))
    config = TrainCpuBenchConfig.from_env()
    assert config.minutes == 3.0 and config.root == tmp_path
    assert config.fit_seconds == pytest.approx(180 - config.startup_reserve_s)
    monkeypatch.delenv("CRISP_BENCH_TRAIN_MINUTES")
    monkeypatch.delenv("CRISP_BENCH_TRAIN_ROOT")
    default = TrainCpuBenchConfig.from_env()
    assert default.minutes == 30.0 and default.root is None
    assert (default.photos / "catalog.csv").name == "catalog.csv" and default.t91.name == "T91"


def test_budget_smaller_than_the_reserve_is_refused():
    with pytest.raises(ValueError, match="raise minutes"):
        _ = TrainCpuBenchConfig(minutes=0.5, startup_reserve_s=40).fit_seconds


def test_schedule_warms_up_by_steps_then_follows_the_clock():
    schedule = WallClockCosine(seconds=100.0, warmup_steps=10, min_lr_ratio=0.01)
    schedule.started = time.monotonic()
    assert schedule.factor(0) == pytest.approx(0.1) and schedule.factor(9) == pytest.approx(1.0)
    assert schedule.factor(10) == pytest.approx(1.0, abs=1e-3)  # just started: top of the cosine
    schedule.started = time.monotonic() - 50.0
    assert schedule.factor(500) == pytest.approx(0.505, abs=1e-2)  # half-way in time, whatever the step
    schedule.started = time.monotonic() - 1000.0
    assert schedule.factor(10**6) == pytest.approx(0.01)  # past the budget: floor, never below


def test_schedule_replaces_the_lambda_of_the_trainer_scheduler():
    net = torch.nn.Linear(2, 2)
    optimizer = torch.optim.Adam(net.parameters(), lr=1.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5)
    trainer = SimpleNamespace(lr_scheduler_configs=[SimpleNamespace(scheduler=scheduler)])
    schedule = WallClockCosine(seconds=100.0, warmup_steps=4, min_lr_ratio=0.0)
    schedule.on_train_start(trainer, None)
    optimizer.step()
    scheduler.step()  # step 1 of warmup: (1 + 1) / 4
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.5)
    optimizer.step()
    scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.75)
    assert scheduler.state_dict()["lr_lambdas"] == [None]  # nothing unpicklable enters a checkpoint


def test_spread_is_min_median_max():
    assert _spread([]) is None
    assert _spread([3.0, 1.0, 2.0]) == [1.0, 2.0, 3.0]


def test_val_curve_keeps_finite_values_and_spells_out_inf():
    schedule = WallClockCosine(seconds=100.0, warmup_steps=0, min_lr_ratio=0.0)
    for step, value in ((5, 30.12345), (10, float("inf"))):
        metrics = {"val/psnr_y": torch.tensor(value, dtype=torch.float64)}
        trainer = SimpleNamespace(callback_metrics=metrics, sanity_checking=False, global_step=step)
        schedule.on_validation_end(trainer, None)
    sanity = SimpleNamespace(callback_metrics={"val/psnr_y": torch.tensor(1.0)}, sanity_checking=True)
    schedule.on_validation_end(sanity, None)
    assert schedule.val_curve == [(5, 30.123), (10, "inf")]
