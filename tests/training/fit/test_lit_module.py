"""SRModule: real training steps lower the loss, the NaN guard, EMA in validation and checkpoints,
exact per-loader validation means, configs and schedule."""

from __future__ import annotations

import math

import lightning.pytorch as pl
import numpy as np
import pydantic
import pytest
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from PIL import Image
from torch.utils.data import DataLoader, DistributedSampler

from pipeline.sr_metrics import psnr_y, ssim_y
from training.fit.lit_module import (
    ModelConfig,
    NonFiniteLossError,
    NonFiniteWeightsError,
    OptimConfig,
    SRModule,
    ema_arch_from_checkpoint,
    lr_factor,
    to_uint8_hwc,
)

torch.set_num_threads(1)  # 2 threads on a shared 2-core box spin-wait: ~50x slower
SCALE = 2


def _pairs(paths, count: int, hr_size: int, seed: int) -> list[dict]:
    """Random aligned crops: HR crop from a real image, LR by Pillow bicubic, as {"lr", "hr", "key"}."""
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(count):
        path = paths[i % len(paths)]
        img = Image.open(path).convert("RGB")
        left = int(rng.integers(0, img.width - hr_size))
        top = int(rng.integers(0, img.height - hr_size))
        hr = img.crop((left, top, left + hr_size, top + hr_size))
        lr = hr.resize((hr_size // SCALE, hr_size // SCALE), Image.BICUBIC)

        def tensor(im):
            return torch.tensor(np.asarray(im)).permute(2, 0, 1).float() / 255.0

        samples.append({"lr": tensor(lr), "hr": tensor(hr), "key": f"{path.stem}-{i}"})
    return samples


@pytest.fixture(scope="module")
def train_pairs(shared_data):
    return _pairs(sorted((shared_data / "sr_train" / "T91").glob("*.png"))[:12], 64, 32, seed=0)


@pytest.fixture(scope="module")
def val_pairs(shared_data):
    return _pairs(sorted((shared_data / "sr_benchmarks" / "Set5").glob("*.png")), 5, 48, seed=1)


def _trainer(tmp_path, steps: int, **kwargs) -> pl.Trainer:
    options = dict(
        accelerator="cpu",
        devices=1,
        max_steps=steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=tmp_path,
    )
    options.update(kwargs)
    return pl.Trainer(**options)


class _LossRecorder(Callback):
    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append(float(outputs["loss"]))


def _module(arch: str = "espcn", **optim) -> SRModule:
    torch.manual_seed(0)
    return SRModule(ModelConfig(arch=arch, scale=SCALE), OptimConfig(lr=1e-3, **optim))


def test_real_training_steps_lower_the_loss(tmp_path, train_pairs):
    recorder = _LossRecorder()
    module = _module(warmup_steps=3, ssim_weight=0.1, fft_weight=0.05)
    loader = DataLoader(train_pairs, batch_size=8, shuffle=True, generator=torch.Generator().manual_seed(0))
    _trainer(tmp_path, 40, callbacks=[recorder], limit_val_batches=0).fit(module, loader)
    assert len(recorder.losses) == 40 and all(math.isfinite(x) for x in recorder.losses)
    assert np.mean(recorder.losses[-5:]) < 0.5 * np.mean(recorder.losses[:5])
    assert module.ema.updates == 40
    # Schedule: cosine ends at lr * min_lr_ratio.
    assert module.trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(
        1e-3 * lr_factor(40, 3, 40, 0.01)
    )


def test_nan_loss_stops_the_run_and_writes_no_nan_checkpoint(tmp_path, train_pairs):
    batches = [dict(p) for p in train_pairs[:24]]
    batches[17]["lr"] = torch.full_like(batches[17]["lr"], float("nan"))  # inside the 3rd batch of 8
    checkpoints = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=1, save_top_k=-1)
    trainer = _trainer(tmp_path, 10, enable_checkpointing=True, callbacks=[checkpoints], limit_val_batches=0)
    with pytest.raises(NonFiniteLossError, match=r"global step 2, epoch 0, batch 2 .*sample keys: .*") as err:
        trainer.fit(_module(), DataLoader(batches, batch_size=8))
    assert "no NaN weights or checkpoint were written" in str(err.value)
    saved = sorted((tmp_path / "ckpt").glob("*.ckpt"))
    assert [torch.load(p, weights_only=True)["global_step"] for p in saved] == [1, 2]
    for path in saved:
        state = torch.load(path, weights_only=True)
        assert all(torch.isfinite(t).all() for t in state["state_dict"].values())


def test_checkpoint_with_nan_weights_is_refused():
    module = _module()
    with torch.no_grad():
        module.net.body[0].weight[0, 0, 0, 0] = float("nan")
    with pytest.raises(NonFiniteWeightsError, match="live weight 'body.0.weight'"):
        module.on_save_checkpoint({})


def _expected_means(model, pairs) -> tuple[float, float]:
    with torch.no_grad():
        sr = to_uint8_hwc(model(torch.stack([p["lr"] for p in pairs])))
    hr = to_uint8_hwc(torch.stack([p["hr"] for p in pairs]))
    return (
        float(np.mean([psnr_y(a, b, SCALE) for a, b in zip(sr, hr, strict=True)])),
        float(np.mean([ssim_y(a, b, SCALE) for a, b in zip(sr, hr, strict=True)])),
    )


def test_validation_uses_ema_weights_and_exact_means_per_loader(tmp_path, train_pairs, val_pairs):
    module = _module()
    loader = DataLoader(train_pairs, batch_size=8, shuffle=True, generator=torch.Generator().manual_seed(0))
    _trainer(tmp_path, 30, limit_val_batches=0).fit(module, loader)
    ema_psnr, ema_ssim = _expected_means(module.ema.module, val_pairs)
    live_psnr, _ = _expected_means(module.net, val_pairs)
    assert abs(ema_psnr - live_psnr) > 0.01  # the two weight sets really differ
    # Uneven batches (2 + 2 + 1 and 3 + 1): per-batch means would differ from the per-image mean.
    loaders = {
        "set5": DataLoader(val_pairs, batch_size=2),
        "tiles": DataLoader(train_pairs[:4], batch_size=3),
    }
    metrics = _trainer(tmp_path, 1).validate(module, dataloaders=loaders, verbose=False)[0]
    tiles_psnr, tiles_ssim = _expected_means(module.ema.module, train_pairs[:4])
    assert metrics["val/psnr_y"] == pytest.approx(ema_psnr, abs=1e-4)
    assert metrics["val/ssim_y"] == pytest.approx(ema_ssim, abs=1e-6)
    assert metrics["val/set5/psnr_y"] == metrics["val/psnr_y"]
    assert metrics["val/set5/images"] == 5 and metrics["val/tiles/images"] == 4
    assert metrics["val/tiles/psnr_y"] == pytest.approx(tiles_psnr, abs=1e-4)
    assert metrics["val/tiles/ssim_y"] == pytest.approx(tiles_ssim, abs=1e-6)


def test_padding_distributed_sampler_is_refused(tmp_path, val_pairs):
    # 5 images on 2 replicas: the default DistributedSampler repeats one to make 6.
    padded = DataLoader(
        val_pairs, batch_size=2, sampler=DistributedSampler(val_pairs, num_replicas=2, rank=0)
    )
    with pytest.raises(ValueError, match="covers 6 samples for a dataset of 5"):
        _trainer(tmp_path, 1, use_distributed_sampler=False).validate(_module(), padded, verbose=False)
    single = _trainer(tmp_path, 1).validate(_module(), DataLoader(val_pairs, batch_size=2), verbose=False)[0]
    assert single["val/images"] == 5 and "val/val/images" not in single


def test_checkpoint_round_trips_ema_and_configs(tmp_path, train_pairs):
    module = _module(ema_decay=0.9)
    checkpoints = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    trainer = _trainer(tmp_path, 12, enable_checkpointing=True, callbacks=[checkpoints], limit_val_batches=0)
    trainer.fit(module, DataLoader(train_pairs, batch_size=8))
    path = tmp_path / "ckpt" / "last.ckpt"
    checkpoint = torch.load(path, weights_only=True)  # plain data only: configs are dicts
    assert checkpoint["hyper_parameters"]["model"] == {"arch": "espcn", "scale": SCALE, "arch_options": {}}
    assert checkpoint["ema"]["updates"] == 12

    restored = SRModule.load_from_checkpoint(path, weights_only=True)
    assert restored.optim_cfg == module.optim_cfg and restored.ema.updates == 12
    for name, value in module.ema.module.state_dict().items():
        torch.testing.assert_close(restored.ema.module.state_dict()[name], value)
        assert not torch.equal(value, module.net.state_dict()[name])  # EMA, not the live weights
    exported = ema_arch_from_checkpoint(checkpoint)
    x = torch.rand(1, 3, 10, 10)
    torch.testing.assert_close(exported(x), module.ema.module(x))


def test_loading_a_checkpoint_without_ema_is_an_error():
    with pytest.raises(ValueError, match="no 'ema' entry"):
        _module().on_load_checkpoint({"state_dict": {}})


def test_configs_reject_bad_values():
    with pytest.raises(ValueError, match="unknown arch 'vdsr'"):
        ModelConfig(arch="vdsr")
    with pytest.raises(ValueError, match="supports scales"):
        ModelConfig(arch="safmn", scale=8)
    with pytest.raises(pydantic.ValidationError, match="extra"):
        OptimConfig(learning_rate=1e-3)
    with pytest.raises(ValueError, match="no trainable parameters"):
        SRModule(ModelConfig(arch="bicubic", scale=2), OptimConfig())
    assert OptimConfig().betas == (0.9, 0.99) and OptimConfig().lr == 2e-4
    with pytest.raises(pydantic.ValidationError, match="pixel_loss"):
        OptimConfig(pixel_loss="huber")


def test_the_pixel_term_is_l1_or_mse():
    sr, hr = torch.zeros(1, 3, 4, 4), torch.full((1, 3, 4, 4), 0.5)
    model = ModelConfig(arch="espcn", scale=SCALE)
    l1_total, l1_parts = SRModule(model, OptimConfig()).compute_loss(sr, hr)
    mse_total, mse_parts = SRModule(model, OptimConfig(pixel_loss="mse")).compute_loss(sr, hr)
    assert set(l1_parts) == {"l1"} and l1_total.item() == pytest.approx(0.5)
    assert set(mse_parts) == {"mse"} and mse_total.item() == pytest.approx(0.25)


def test_warmup_longer_than_the_run_is_an_error(tmp_path, train_pairs):
    with pytest.raises(ValueError, match="warmup_steps=10 must be below the 5 training steps"):
        _trainer(tmp_path, 5, limit_val_batches=0).fit(
            _module(warmup_steps=10), DataLoader(train_pairs, batch_size=8)
        )


def test_lr_factor_warms_up_then_follows_a_cosine_to_the_floor():
    assert lr_factor(0, 4, 20, 0.01) == pytest.approx(0.25)
    assert lr_factor(3, 4, 20, 0.01) == pytest.approx(1.0)
    assert lr_factor(4, 4, 20, 0.01) == pytest.approx(1.0)
    assert lr_factor(12, 4, 20, 0.01) == pytest.approx(0.01 + 0.99 * 0.5)
    assert lr_factor(20, 4, 20, 0.01) == pytest.approx(0.01)
    assert lr_factor(25, 4, 20, 0.01) == pytest.approx(0.01)
