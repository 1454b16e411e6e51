"""Tests of the upscale benchmark's own pieces: inputs, per-child peak memory, the baseline child, figures."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from PIL import Image

from bench.bench_upscale import (
    UPSCALE_CLI,
    UpscaleBenchConfig,
    memory_figures,
    pick_photo,
    prepare_inputs,
    run_measured,
    whole_image_forward,
)


def test_config_from_env(monkeypatch):
    monkeypatch.delenv("CRISP_BENCH_REPEATS", raising=False)
    monkeypatch.delenv("CRISP_BENCH_QUICK", raising=False)
    assert UpscaleBenchConfig.from_env().repeats == 3
    monkeypatch.setenv("CRISP_BENCH_QUICK", "1")
    assert UpscaleBenchConfig.from_env().repeats == 1
    assert UpscaleBenchConfig().crop == 1000 and UpscaleBenchConfig().large == 4000


def test_pick_photo_and_prepare_inputs(product_photos, tmp_path):
    photo = pick_photo(product_photos, 1000)
    with Image.open(photo) as img:
        assert min(img.size) >= 1000
    with pytest.raises(ValueError, match="lower `crop`"):
        pick_photo(product_photos, 100_000)
    crop, large, tiny = prepare_inputs(photo, 64, 256, tmp_path)
    sizes = [Image.open(p).size for p in (crop, large, tiny)]
    assert sizes == [(64, 64), (256, 256), (32, 32)]
    # the large input is the crop upsized, so its content is the same photo region
    small_again = np.asarray(Image.open(large).convert("RGB").resize((64, 64), Image.Resampling.BICUBIC))
    assert np.abs(small_again.astype(int) - np.asarray(Image.open(crop)).astype(int)).mean() < 6


def test_run_measured_reports_each_childs_own_peak(tmp_path):
    touch_300_mib = "b = bytearray(300 * 2**20); b[::4096] = b'x' * len(b[::4096])"
    big = run_measured([sys.executable, "-c", touch_300_mib],
                       tmp_path / "big.log")  # fmt: skip
    ballast = bytearray(200 * 2**20)  # make this process large: a child must not inherit its high-water mark
    ballast[:: 2**12] = b"x" * len(ballast[:: 2**12])
    small = run_measured([sys.executable, "-c", "pass"], tmp_path / "small.log")
    del ballast
    # each figure is its own process's peak, not this (large) process's RSS nor the max over all children
    assert big["peak_rss_mib"] >= 300 and small["peak_rss_mib"] < 60
    with pytest.raises(RuntimeError, match="exited 3"):
        run_measured([sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"], tmp_path / "bad.log")


@pytest.fixture(scope="module")
def espcn_checkpoint(tmp_path_factory):
    from tests.support.checkpoints import random_state, write_checkpoint

    return write_checkpoint(
        tmp_path_factory.mktemp("ckpt") / "espcn.ckpt", random_state("espcn", 4), "espcn", 4
    )


def test_whole_image_forward_matches_tiled_upscale(espcn_checkpoint, product_photos, tmp_path):
    from training.gates.safe_load import safe_load
    from training.serve.upscale import upscale_image

    crop, _, _ = prepare_inputs(pick_photo(product_photos, 1000), 40, 48, tmp_path)
    whole_image_forward(str(espcn_checkpoint), str(crop), str(tmp_path / "whole.png"))
    whole = np.asarray(Image.open(tmp_path / "whole.png"))
    model, _ = safe_load(str(espcn_checkpoint))
    tiled = upscale_image(
        model, np.asarray(Image.open(crop).convert("RGB")), 4, tile=24, overlap=8, device="cpu"
    )
    assert whole.shape == tiled.shape == (160, 160, 3)
    assert (
        np.abs(whole.astype(int) - tiled.astype(int)).max() <= 1
    )  # ESPCN's receptive field fits the overlap


def test_upscale_cli_entry_writes_the_upscaled_png(espcn_checkpoint, product_photos, tmp_path):
    _, _, tiny = prepare_inputs(pick_photo(product_photos, 1000), 64, 64, tmp_path)
    command = [sys.executable, "-c", UPSCALE_CLI, "upscale", str(tiny), "--model", str(espcn_checkpoint),
               "--out", str(tmp_path / "out"), "--device", "cpu"]  # fmt: skip
    result = run_measured(command, tmp_path / "cli.log")
    assert Image.open(tmp_path / "out" / "tiny_x4.png").size == (128, 128)
    assert result["peak_rss_mib"] > 50 and result["seconds"] > 0


def test_memory_figures_ratios():
    config = UpscaleBenchConfig(crop=1000, large=4000)
    memory = {
        "floor": {"peak_rss_mib": 400.0, "seconds": 3.0, "output_bytes": 10},
        "whole_crop": {"peak_rss_mib": 1200.0, "seconds": 5.0},
        "tiled_crop": {"peak_rss_mib": 450.0, "seconds": 8.0, "output_bytes": 10},
        "tiled_large": {"peak_rss_mib": 600.0, "seconds": 64.0, "output_bytes": 10},
    }
    speed = {"espcn_x4_tiled_mp_per_s": {"value": 3.0}, "espcn_x4_whole_image_mp_per_s": {"value": 4.0}}
    figures, ratio = memory_figures(config, memory, speed)
    assert figures["peak_rss_tiled_large_mib"]["value"] == 600.0
    assert figures["cli_tiled_large_end_to_end_mp_per_s"]["value"] == 4.0  # 256 MP out in 64 s
    assert ratio["peak_large_over_peak_crop"] == round(600 / 450, 3) and ratio["area_large_over_crop"] == 16
    assert ratio["above_floor_large_over_crop"] == 4.0
    assert (
        ratio["tiled_crop_over_whole_image_crop"] == 0.375 and ratio["tiled_over_whole_image_speed"] == 0.75
    )
