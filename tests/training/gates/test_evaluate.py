"""evaluate_folder: the bicubic arch reproduces the published bicubic Y-PSNR rows on Set5 and Set14."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline.sr_metrics import PUBLISHED_BICUBIC_Y_PSNR, modcrop, psnr_y
from training.archs import build_arch
from training.gates.evaluate import evaluate_folder

torch.set_num_threads(1)


@pytest.mark.parametrize(("set_name", "scale"), sorted(PUBLISHED_BICUBIC_Y_PSNR))
def test_bicubic_arch_reproduces_published_numbers(shared_data, set_name, scale):
    result = evaluate_folder(build_arch("bicubic", scale), shared_data / "sr_benchmarks" / set_name, scale)
    assert len(result.per_image) == {"Set5": 5, "Set14": 14}[set_name]
    assert result.mean_psnr_y == pytest.approx(PUBLISHED_BICUBIC_Y_PSNR[(set_name, scale)], abs=0.05)
    if set_name == "Set5" and scale == 4:
        assert result.mean_ssim_y == pytest.approx(0.8111, abs=0.001)  # the x4 Y-SSIM measured for Pillow


def test_gray_image_is_scored_on_raw_values(shared_data):
    # bridge.png is mode L: its score must equal Pillow's gray down+up scale scored single-channel.
    path = shared_data / "sr_benchmarks" / "Set14" / "bridge.png"
    hr = Image.open(path)
    assert hr.mode == "L"
    hr_arr = modcrop(np.asarray(hr), 4)
    lr = Image.fromarray(hr_arr).resize((hr_arr.shape[1] // 4, hr_arr.shape[0] // 4), Image.BICUBIC)
    up = np.asarray(lr.resize((hr_arr.shape[1], hr_arr.shape[0]), Image.BICUBIC))
    folder = path.parent
    result = evaluate_folder(build_arch("bicubic", 4), folder, 4)
    assert result.per_image["bridge.png"][0] == pytest.approx(psnr_y(up, np.ascontiguousarray(hr_arr), 4))


def test_learned_model_on_mixed_folder_restores_training_flag(tmp_path, shared_data):
    # A small folder: an RGB crop, a gray crop and an RGBA image, with sides not divisible by the scale.
    butterfly = Image.open(shared_data / "sr_benchmarks" / "Set5" / "butterfly.png")
    butterfly.crop((0, 0, 62, 50)).save(tmp_path / "rgb.png")
    butterfly.crop((100, 100, 161, 151)).convert("L").save(tmp_path / "gray.png")
    butterfly.crop((200, 200, 250, 250)).convert("RGBA").save(tmp_path / "rgba.png")
    (tmp_path / "notes.txt").write_text("not an image")
    torch.manual_seed(0)
    model = build_arch("espcn", 3).train()
    result = evaluate_folder(model, tmp_path, 3)
    assert model.training
    assert sorted(result.per_image) == ["gray.png", "rgb.png", "rgba.png"]
    for psnr, ssim in result.per_image.values():
        assert np.isfinite(psnr) and -1.0 <= ssim <= 1.0
    assert result.mean_psnr_y == pytest.approx(np.mean([v[0] for v in result.per_image.values()]))


def test_empty_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="no HR images"):
        evaluate_folder(build_arch("bicubic", 2), tmp_path, 2)
