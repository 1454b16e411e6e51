"""bench/bench_gan.py: the real-world Set14 protocol (seeded, repeatable, x4 aligned), the crop taken where
the edges are, the settings from the environment, and targets flagged missed, with why, when not measured."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from bench import bench_gan, results


def test_realworld_set14_is_seeded_and_aligned(shared_data):
    first, again = bench_gan.realworld_set14(), bench_gan.realworld_set14()
    assert len(first) == 14
    for (lr, hr), (lr2, _) in zip(first, again, strict=True):
        assert hr.shape[0] == 4 * lr.shape[0] and hr.shape[1] == 4 * lr.shape[1] and hr.shape[2] == 3
        assert np.array_equal(lr, lr2)
    assert len({lr.tobytes() for lr, _ in first}) == 14


def test_the_crop_row_is_taken_where_the_hr_has_its_edges():
    hr = np.full((200, 300, 3), 255, np.uint8)
    hr[150:160, 230:290] = 0  # the only detail: a bar near the bottom right
    row = bench_gan._crop_row([hr, hr], hr)
    assert row.shape == (bench_gan.CROP, 2 * bench_gan.CROP, 3)
    assert (row == 0).any()  # the bar is in the window


def test_the_config_reads_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(results.MODELS_DIR_ENV, str(tmp_path))
    monkeypatch.setenv("CRISP_BENCH_GAN_MINUTES", "7")
    monkeypatch.setenv("CRISP_BENCH_GAN_QUALITY_MODEL", "/models/quality.onnx")
    config = bench_gan.GanBenchConfig.from_env()
    assert (
        config.minutes == 7 and config.quality_model == "/models/quality.onnx" and config.photo_limit is None
    )
    monkeypatch.setenv("CRISP_BENCH_QUICK", "1")
    assert bench_gan.GanBenchConfig.from_env().photo_limit == 40


def _run() -> dict:
    """What train_budgeted returns, as summarize reads it."""
    return {
        "result": SimpleNamespace(global_step=10),
        "call_seconds": 60.0,
        "val_curve": [],
        "load_samples": [],
    }


def test_targets_are_met_missed_or_missed_with_why():
    run = _run()
    metrics = {"gan/niqe_gain": 1.4, "gan/psnr_drop_db": 3.0, "gan/edge_psnr_drop_db": 1.0}
    ground_truth = {"niqe_gain": -2.0, "niqe_lower_share": 0.25, "quality_preference": 1.0}
    scored = {
        "products_test": {
            "metrics": metrics,
            "means": {},
            "gates": {},
            "images": 5,
            "ground_truth": ground_truth,
        }
    }
    ingest, pairs = SimpleNamespace(inputs=9, accepted=9), SimpleNamespace(pairs=20)
    _, _, ratio, targets, notes = bench_gan.summarize(
        bench_gan.GanBenchConfig(), scored, run, run, ingest, pairs, 1.0, (0.0, 0.0, 0.0)
    )
    assert targets["products_test_niqe_gain"]["met"] and targets["products_test_edge_psnr_drop_db"]["met"]
    assert not targets["products_test_psnr_drop_db"]["met"]
    preference = targets["products_test_quality_preference"]
    assert not preference["met"] and preference["measured"] is None and "quality model" in preference["why"]
    assert ratio == {"products_test": 1.4} and "SMOKE" not in notes
    assert targets["products_test_niqe_gain"]["the_hr_itself"] == -2.0
    assert "the_hr_itself" not in targets["products_test_psnr_drop_db"]


def test_the_ground_truth_ceiling_pairs_niqe_and_counts_the_quality_models_preference():
    values = {"twin_niqe": [10.0, 12.0, float("nan")], "hr_niqe": [8.0, 13.0, 5.0],
              "twin_quality": [2.0, 3.0, 1.0], "hr_quality": [2.5, 3.0, 0.5]}  # fmt: skip
    ceiling = bench_gan.ground_truth_ceiling(values)
    assert ceiling == {"niqe_gain": 0.5, "niqe_lower_share": 0.5, "quality_preference": 0.5}
    without = bench_gan.ground_truth_ceiling({**values, "twin_quality": [], "hr_quality": []})
    assert without["quality_preference"] is None and without["niqe_gain"] == 0.5


def test_the_quality_model_bench_quality_kept_is_the_default_and_is_named(monkeypatch, tmp_path):
    monkeypatch.setenv(results.MODELS_DIR_ENV, str(tmp_path))
    monkeypatch.delenv("CRISP_BENCH_GAN_QUALITY_MODEL", raising=False)
    assert bench_gan.GanBenchConfig.from_env().quality_model is None
    assert "make bench BENCH_ARGS=quality" in bench_gan.quality_model_facts(None)["why"]
    path = results.keep_model("quality", b"onnx", test_srcc=0.87)
    config = bench_gan.GanBenchConfig.from_env()
    assert config.quality_model == str(path)
    facts = bench_gan.quality_model_facts(config.quality_model)
    assert facts["trained_by"] == "bench_quality" and facts["test_srcc"] == 0.87
    other = tmp_path / "other.onnx"
    other.write_bytes(b"another model")
    assert set(bench_gan.quality_model_facts(str(other))) == {"path", "sha256"}


def test_a_measured_preference_is_judged_like_any_target():
    run = _run()
    metrics = {"gan/quality_preference": 0.75}
    scored = {"set14_realworld": {"metrics": metrics, "means": {}, "gates": {}, "images": 14}}
    ingest, pairs = SimpleNamespace(inputs=9, accepted=9), SimpleNamespace(pairs=20)
    config = bench_gan.GanBenchConfig(quality_model="/nowhere/quality.onnx")
    figures, _, _, targets, _ = bench_gan.summarize(config, scored, run, run, ingest, pairs, 1.0, (0.0,) * 3)
    assert targets["set14_realworld_quality_preference"] == {
        "target": ">= 0.7",
        "measured": 0.75,
        "met": True,
    }
    assert targets["set14_realworld_niqe_gain"]["why"] == "not measurable on these images"
    assert figures["quality_model"]["value"] == "/nowhere/quality.onnx"


def test_means_are_taken_over_the_images_every_model_has_a_value_for():
    nan = float("nan")
    values = {"twin_niqe": [20.0, 10.0, 30.0], "gan_niqe": [18.0, nan, 29.0],
              "twin_psnr": [30.0, 31.0, 32.0], "gan_psnr": [29.0, 30.0, 31.0]}  # fmt: skip
    means = bench_gan.paired_means(values, ["twin", "gan"])
    # the twin's NIQE on the image the GAN has none for is left out of both means
    assert means["twin_niqe"] == 25.0 and means["gan_niqe"] == 23.5 and means["niqe_images"] == 2
    assert means["twin_psnr"] == 31.0 and means["gan_psnr"] == 30.0 and "psnr_images" not in means
    assert (
        bench_gan.paired_means({"twin_niqe": [nan], "gan_niqe": [1.0]}, ["twin", "gan"])["twin_niqe"] is None
    )
