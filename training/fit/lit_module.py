"""Train a super-resolution arch with Lightning: loss, optimizer, schedule, EMA, validation metrics.

In: batches {"lr": N x 3 x h x w float [0, 1], "hr": N x 3 x hs x ws float [0, 1], optional "key", and for
a restorer that reads damage levels "level": N x L (training/archs/levels.py)}.
Out: an `SRModule` that Lightning's `Trainer` fits; it logs `train/loss` (and its parts) and, per
validation dataloader, `val/psnr_y` / `val/ssim_y`, and its checkpoints carry the EMA weights.

Choices (the configs below own the numbers):
- Loss: L1, plus `ssim_weight * (1 - SSIM)` (11x11 Gaussian, RGB, data range 1) and `fft_weight * L1`
  between the real/imaginary parts of the 2-D FFTs (SAFMN's frequency loss), both off by default.
- Optimizer: Adam, betas (0.9, 0.99). Schedule, per optimizer step: linear warmup from 0 to `lr` over
  `warmup_steps`, then cosine from `lr` down to `lr * min_lr_ratio` (default 0.01) at the last step.
  The last step is `max_steps` from the config, else the trainer's estimated stepping batches.
- Gradient clipping is the Trainer's job: `Trainer(gradient_clip_val=..., gradient_clip_algorithm=
  "norm")` (it then works with AMP and DDP); mixed precision is `Trainer(precision="bf16-mixed")` on GPU.
- EMA: updated after every optimizer step (training/fit/ema.py); validation runs on the EMA weights, and
  checkpoints hold both the live weights (`state_dict`) and the average (`checkpoint["ema"]`).
- Non-finite loss: all ranks agree on it, then `NonFiniteLossError` (naming step and batch) stops the
  run before the optimizer step, so the weights stay finite; a checkpoint with non-finite weights is
  refused with `NonFiniteWeightsError` before anything is written.
- Validation: outputs and targets are quantized to uint8 (round, clamp) and scored per image with
  pipeline.sr_metrics (Y channel, border = scale). Per dataloader the module keeps float64 sums of
  PSNR and SSIM and an image count, sums them over ranks at epoch end and logs sum / count: exactly
  the single-process mean. That needs disjoint, unpadded per-rank shares: Lightning's default
  DistributedSampler pads ranks with repeated images, so such a sampler is refused with a ValueError.
  Loader names: the keys when `val_dataloaders` is a dict, else "val" (one loader) or "val_<i>".
  The first loader is also logged as `val/psnr_y`, `val/ssim_y`, `val/images` (the checkpoint monitor);
  every named loader as `val/<name>/psnr_y`, `val/<name>/ssim_y`, `val/<name>/images`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import lightning.pytorch as pl
import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn
from torch.utils.data import DistributedSampler
from torchmetrics.functional.image import structural_similarity_index_measure

from pipeline.sr_metrics import psnr_y, ssim_y
from training.archs import build_arch, check_arch
from training.fit.ema import ModelEMA


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite; the run stops before the weights are touched."""


class NonFiniteWeightsError(RuntimeError):
    """A checkpoint was about to be written with NaN or infinite weights."""


class ModelConfig(BaseModel):
    """Which arch to train: registry name, upscaling factor, constructor overrides."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    arch: str = "espcn"
    scale: int = 4
    arch_options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known_arch(self) -> ModelConfig:
        check_arch(self.arch, self.scale, self.arch_options)
        return self


class OptimConfig(BaseModel):
    """How to train it. lr 2e-4 suits EDSR-baseline; ESPCN and SAFMN configs set 1e-3."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lr: float = Field(default=2e-4, gt=0)
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = Field(default=0.0, ge=0)
    warmup_steps: int = Field(default=0, ge=0)
    min_lr_ratio: float = Field(default=0.01, ge=0, le=1)
    max_steps: int | None = Field(default=None, gt=0)
    ema_decay: float = Field(default=0.999, ge=0, lt=1)
    ema_warmup: bool = True
    # the pixel term: l1 (SR's default); mse for restoration, where most pixels of a lightly damaged tile
    # are already right and L1's median pull keeps the correction at zero (see training/configs/ffdnet_x1.yaml)
    pixel_loss: Literal["l1", "mse"] = "l1"
    ssim_weight: float = Field(default=0.0, ge=0)
    fft_weight: float = Field(default=0.0, ge=0)


def lr_factor(step: int, warmup_steps: int, total_steps: int, min_lr_ratio: float) -> float:
    """Multiplier of the base lr at optimizer step `step` (0-based): linear warmup, then cosine."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(total_steps - warmup_steps, 1)
    progress = min((step - warmup_steps) / span, 1.0)
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def to_uint8_hwc(images: torch.Tensor) -> np.ndarray:
    """N x C x H x W float [0, 1] -> N x H x W x C uint8, rounded and clamped like a saved PNG."""
    levels = torch.round(images.detach().float().clamp(0.0, 1.0) * 255.0).to(torch.uint8)
    return levels.permute(0, 2, 3, 1).cpu().numpy()


class SRModule(pl.LightningModule):
    def __init__(self, model: ModelConfig | dict[str, Any], optim: OptimConfig | dict[str, Any]) -> None:
        super().__init__()
        self.model_cfg = model if isinstance(model, ModelConfig) else ModelConfig.model_validate(model)
        self.optim_cfg = optim if isinstance(optim, OptimConfig) else OptimConfig.model_validate(optim)
        # Plain dicts, so checkpoints load with weights_only=True and hparams.yaml stays readable.
        self.save_hyperparameters(
            {"model": self.model_cfg.model_dump(), "optim": self.optim_cfg.model_dump()}
        )
        cfg = self.model_cfg
        self.net = build_arch(cfg.arch, cfg.scale, **cfg.arch_options)
        if not any(p.requires_grad for p in self.net.parameters()):
            raise ValueError(f"arch {cfg.arch!r} has no trainable parameters: evaluate it, do not train it")
        self.ema = ModelEMA(self.net, decay=self.optim_cfg.ema_decay, warmup=self.optim_cfg.ema_warmup)
        self._val_sums: dict[int, torch.Tensor] = {}

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        return self.net(lr)

    # --- training -------------------------------------------------------------------------------
    def compute_loss(
        self, sr: torch.Tensor, hr: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Total loss and its named parts (the pixel term, L1 or MSE, and SSIM / FFT terms when their weights
        are > 0)."""
        cfg = self.optim_cfg
        pixel = F.mse_loss if cfg.pixel_loss == "mse" else F.l1_loss
        parts = {cfg.pixel_loss: pixel(sr, hr)}
        total = parts[cfg.pixel_loss]
        if cfg.ssim_weight > 0:
            ssim = structural_similarity_index_measure(sr.float(), hr.float(), data_range=1.0)
            parts["ssim"] = 1.0 - ssim
            total = total + cfg.ssim_weight * parts["ssim"]
        if cfg.fft_weight > 0:
            sr_fft, hr_fft = torch.fft.rfft2(sr.float()), torch.fft.rfft2(hr.float())
            parts["fft"] = F.l1_loss(torch.view_as_real(sr_fft), torch.view_as_real(hr_fft))
            total = total + cfg.fft_weight * parts["fft"]
        return total, parts

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        # a conditioned restorer is told each sample's damage levels (some hidden); validation runs blind
        sr = self.net(batch["lr"], batch["level"]) if "level" in batch else self.net(batch["lr"])
        loss, parts = self.compute_loss(sr, batch["hr"])
        self._stop_if_not_finite(loss, batch, batch_idx)
        size = batch["lr"].shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=size)
        for name, value in parts.items():
            self.log(f"train/{name}", value, batch_size=size)
        return loss

    def _stop_if_not_finite(self, loss: torch.Tensor, batch: dict[str, Any], batch_idx: int) -> None:
        finite = bool(torch.isfinite(loss.detach()).item())
        # Every rank must take the same branch, or the others would wait forever in the all-reduce.
        if self._trainer is not None:
            finite = self.trainer.strategy.reduce_boolean_decision(finite, all=True)
        if finite:
            return
        keys = batch.get("key")
        where = f" (sample keys: {list(keys)})" if keys is not None else ""
        raise NonFiniteLossError(
            f"non-finite training loss ({loss.item()} on this rank) at global step {self.global_step}, "
            f"epoch {self.current_epoch}, batch {batch_idx}{where}; stopped before the optimizer step, "
            "so no NaN weights or checkpoint were written. Lower the lr, set gradient_clip_val, "
            "or check the batch for NaN/inf inputs."
        )

    def optimizer_step(
        self, epoch: int, batch_idx: int, optimizer: Any, optimizer_closure: Any = None
    ) -> None:
        # the base class named, not super(): QualityModule and MatteModule borrow this method
        pl.LightningModule.optimizer_step(self, epoch, batch_idx, optimizer, optimizer_closure)
        self.ema.update(self.net)

    def param_groups(self) -> list[dict[str, Any]]:
        """Adam's parameter groups (the schedule scales each group's lr): the arch; a GAN adds its critic."""
        return [{"params": list(self.net.parameters())}]

    def configure_optimizers(self) -> dict[str, Any]:
        cfg = self.optim_cfg
        total = cfg.max_steps or self.trainer.estimated_stepping_batches
        if not math.isfinite(total) or total < 1:
            raise ValueError(f"cannot size the lr schedule from {total} steps; set OptimConfig.max_steps")
        total = int(total)
        if cfg.warmup_steps >= total:
            raise ValueError(f"warmup_steps={cfg.warmup_steps} must be below the {total} training steps")
        optimizer = torch.optim.Adam(
            self.param_groups(), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay
        )
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: lr_factor(step, cfg.warmup_steps, total, cfg.min_lr_ratio)
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    # --- validation ------------------------------------------------------------------------------
    def on_fit_start(self) -> None:
        self.ema.to(self.device)

    def on_validation_start(self) -> None:
        self.ema.to(self.device)
        for loader in self._val_loaders():
            sampler = getattr(loader, "sampler", None)
            if isinstance(sampler, DistributedSampler) and sampler.total_size != len(sampler.dataset):
                raise ValueError(
                    f"the validation sampler covers {sampler.total_size} samples for a dataset of "
                    f"{len(sampler.dataset)}: repeated or dropped images would bias val/psnr_y. Give each "
                    "rank a disjoint, unpadded share (Trainer(use_distributed_sampler=False) with the data "
                    "module's own split, or lightning's UnrepeatedDistributedSamplerWrapper)"
                )

    def on_validation_epoch_start(self) -> None:
        self._val_sums = {}

    def validation_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> None:
        sr = to_uint8_hwc(self.ema.module(batch["lr"]))
        hr = to_uint8_hwc(batch["hr"])
        border = self.model_cfg.scale
        sums = self._val_sums.setdefault(dataloader_idx, torch.zeros(3, dtype=torch.float64))
        for sr_img, hr_img in zip(sr, hr, strict=True):
            sums += torch.tensor(
                [psnr_y(sr_img, hr_img, border), ssim_y(sr_img, hr_img, border), 1.0], dtype=torch.float64
            )

    def _val_loaders(self) -> list[Any]:
        loaders = self.trainer.val_dataloaders
        if isinstance(loaders, Mapping):
            return list(loaders.values())
        if isinstance(loaders, Sequence):
            return list(loaders)
        return [] if loaders is None else [loaders]

    def _val_loader_names(self) -> list[str]:
        loaders = self.trainer.val_dataloaders
        if isinstance(loaders, Mapping):
            return [str(name) for name in loaders]
        count = len(self._val_loaders())
        return [f"val_{i}" for i in range(count)] if count > 1 else ["val"]

    def on_validation_epoch_end(self) -> None:
        names = self._val_loader_names()
        # One tensor for all loaders, zeros where this rank saw none: every rank joins the same reduce.
        local = torch.zeros(len(names), 3, dtype=torch.float64)
        for idx, sums in self._val_sums.items():
            local[idx] = sums
        total = self.trainer.strategy.reduce(local.to(self.device), reduce_op="sum").cpu()
        for idx, name in enumerate(names):
            psnr_sum, ssim_sum, count = total[idx].tolist()
            if count == 0:
                continue
            values = {"psnr_y": psnr_sum / count, "ssim_y": ssim_sum / count, "images": count}
            prefixes = (["val"] if idx == 0 else []) + ([f"val/{name}"] if name != "val" else [])
            for prefix in prefixes:
                for metric, value in values.items():
                    shown = prefix == "val" and metric != "images"
                    self.log(f"{prefix}/{metric}", value, prog_bar=shown, sync_dist=False)
        self._val_sums = {}

    # --- checkpoints -----------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        for label, module in (("live", self.net), ("EMA", self.ema.module)):
            for name, tensor in module.state_dict().items():
                if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                    raise NonFiniteWeightsError(
                        f"refusing to write a checkpoint at global step {self.global_step}: "
                        f"{label} weight {name!r} holds NaN/inf values"
                    )
        checkpoint["ema"] = self.ema.state_dict()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if "ema" not in checkpoint:
            raise ValueError(f"checkpoint has no 'ema' entry: it was not written by {type(self).__name__}")
        self.ema.load_state_dict(checkpoint["ema"])


def ema_arch_from_checkpoint(checkpoint: Mapping[str, Any]) -> nn.Module:
    """The EMA-weighted arch (what validation scored) from a loaded SRModule checkpoint dict."""
    model_cfg = ModelConfig.model_validate(checkpoint["hyper_parameters"]["model"])
    net = build_arch(model_cfg.arch, model_cfg.scale, **model_cfg.arch_options)
    net.load_state_dict(checkpoint["ema"]["weights"])
    return net.eval()
