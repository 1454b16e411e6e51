"""bench/bench_video.py: the settings from the environment, the pan clip it serves, and targets flagged
missed when the multi-frame model falls short of its single-frame twin."""

from __future__ import annotations

from types import SimpleNamespace

import av
import pytest

from bench import bench_video


def test_the_config_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("CRISP_BENCH_QUICK", "1")
    quick = bench_video.VideoBenchConfig.from_env()
    assert quick.photo_limit == 160 and quick.minutes == 1
    assert quick.data_overrides() == {"data.batch_size": 16, "data.crop": 24, "data.workers": 1}
    monkeypatch.delenv("CRISP_BENCH_QUICK")
    full = bench_video.VideoBenchConfig.from_env()
    assert full.minutes == 15 and not full.lr_reencode and full.result_name == "video"
    monkeypatch.setenv("CRISP_BENCH_VIDEO_LR", "h264")
    assert bench_video.VideoBenchConfig.from_env().result_name == "video_h264"
    monkeypatch.setenv("CRISP_BENCH_VIDEO_LR", "vp9")
    with pytest.raises(ValueError, match="bicubic or h264"):
        bench_video.VideoBenchConfig.from_env()


def test_the_pan_clip_is_a_real_640_by_360_video(tmp_path, product_photos):
    clip = bench_video.write_pan(tmp_path / "pan.mp4", sorted(product_photos.glob("*.jpg"))[0], 5)
    with av.open(str(clip)) as video:
        stream = video.streams.video[0]
        assert (stream.width, stream.height, stream.frames, stream.average_rate) == (640, 360, 5, 25)


def test_targets_are_flagged_missed_when_the_model_falls_short():
    def measures(psnr, temporal):
        return {"psnr_y": psnr, "ssim_y": 0.9, "temporal_error": temporal, "per_clip_psnr_y": [psnr, psnr],
                "per_clip_temporal": [temporal], "seconds": 1.0}  # fmt: skip

    scored = {
        "bicubic": measures(30.0, 0.3),
        "single_frame": measures(31.0, 0.5),
        "multi_frame": measures(31.2, 0.6),
    }
    model = {"arch": "frame_fusion", "scale": 4, "arch_options": {"frames": 1, "features": 8, "blocks": 1}}
    run = {"result": SimpleNamespace(global_step=10), "call_seconds": 960.0, "val_curve": [], "load_samples": [],
           "model": model}  # fmt: skip
    served = [{"frames_per_s": 0.2, "peak_rss_mib": 900.0, "seconds": 40.0, "frames": 8, "input_frames": 8},
              {"frames_per_s": 0.2, "peak_rss_mib": 1200.0, "seconds": 120.0, "frames": 24, "input_frames": 24}]  # fmt: skip
    _, _, ratio, targets = bench_video.summarize(
        bench_video.VideoBenchConfig(), scored, {}, {"multi_frame": run, "single_frame": run}, served, 2
    )
    assert not targets["psnr_gain_over_single_frame_db"]["met"] and ratio["psnr_multi_minus_single_db"] == 0.2
    assert not targets["temporal_error_below_single_frame"]["met"]
    assert not targets["training_minutes_both"]["met"]  # 2 x 16 minutes
    assert not targets["memory_independent_of_length"]["met"]
