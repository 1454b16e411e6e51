"""Train the background-removal model with Lightning: mask + alpha + compositional loss, EMA, exact metrics.

In: training batches {"image", "fg", "bg": B x 3 x h x w, "alpha": B x 1 x h x w, floats in [0, 1], "key"}
(training/data/matte.py), and validation batches of whole canvases that also carry their "background"
kind. Out: a `MatteModule` that Lightning's `Trainer` fits; it logs `train/loss` and its parts
(`train/bce`, `train/iou`, `train/l1`, `train/composition`), and `val/iou` (the checkpoint monitor,
higher is better), `val/mae`, `val/sad`, `val/grad`, `val/boundary_f`, `val/samples` and
`val/iou/<background kind>`; its checkpoints carry the EMA weights in `checkpoint["ema"]` as SRModule's do.

Loss = bce_weight * BCE(logits, alpha) + iou_weight * (1 - soft IoU(sigmoid, alpha)) + l1_weight *
|sigmoid - alpha| + composition_weight * |sigmoid F + (1 - sigmoid) B - I| (Xu et al. 2017's
compositional loss: an alpha error costs what it costs in the picture; where F and B look alike it is
free). BCE takes the soft alpha as its target: an edge pixel's 0.4 is learned, not rounded.

Optimizer, lr schedule, the non-finite-loss stop and the refusal to checkpoint non-finite weights are
SRModule's methods, shared unchanged; OptimConfig's ssim/fft/pixel_loss knobs are SR-only and ignored.
Validation metrics are exact under DDP: every rank keeps (key, kind, measures) per sample, gathered and
sorted by key (lit_quality's `gather_records`), so every rank averages the single-process set.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator

from pipeline.matte.measure import matte_measures, mean_measures
from training.archs.matte_net import build_matte_arch, check_matte_arch
from training.fit.ema import ModelEMA
from training.fit.lit_module import OptimConfig, SRModule
from training.fit.lit_quality import gather_records


class MatteModelConfig(BaseModel):
    """Which matte arch to train and how its loss weighs the mask, the alpha and the composite."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    arch: str = "matte_net"
    arch_options: dict[str, Any] = Field(default_factory=dict)
    bce_weight: float = Field(default=1.0, ge=0)
    iou_weight: float = Field(default=1.0, ge=0)
    l1_weight: float = Field(default=1.0, ge=0)
    composition_weight: float = Field(default=1.0, ge=0)

    @model_validator(mode="after")
    def _known_arch(self) -> MatteModelConfig:
        check_matte_arch(self.arch, self.arch_options)
        return self


def soft_iou(alpha: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of sum(a t) / sum(a + t - a t): 1 for a perfect matte, differentiable."""
    inter = (alpha * target).flatten(1).sum(1)
    union = (alpha + target - alpha * target).flatten(1).sum(1)
    return (inter / union.clamp_min(1e-6)).mean()


class MatteModule(pl.LightningModule):
    def __init__(self, model: MatteModelConfig | dict[str, Any], optim: OptimConfig | dict[str, Any]) -> None:
        super().__init__()
        self.model_cfg = (
            model if isinstance(model, MatteModelConfig) else MatteModelConfig.model_validate(model)
        )
        self.optim_cfg = optim if isinstance(optim, OptimConfig) else OptimConfig.model_validate(optim)
        self.save_hyperparameters(
            {"model": self.model_cfg.model_dump(), "optim": self.optim_cfg.model_dump()}
        )
        self.net = build_matte_arch(self.model_cfg.arch, **self.model_cfg.arch_options)
        self.ema = ModelEMA(self.net, decay=self.optim_cfg.ema_decay, warmup=self.optim_cfg.ema_warmup)
        self._val_records: list[tuple[str, str, dict[str, float]]] = []

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(image)

    # SR's, shared unchanged: they read only self.net, self.ema, self.optim_cfg and the trainer.
    param_groups = SRModule.param_groups
    configure_optimizers = SRModule.configure_optimizers
    _stop_if_not_finite = SRModule._stop_if_not_finite
    on_save_checkpoint = SRModule.on_save_checkpoint
    on_load_checkpoint = SRModule.on_load_checkpoint
    optimizer_step = SRModule.optimizer_step  # then the EMA update
    on_fit_start = SRModule.on_fit_start

    def compute_loss(
        self, logits: torch.Tensor, batch: dict[str, Any]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        cfg = self.model_cfg
        logits, target = logits.float(), batch["alpha"].float()  # bf16 autocast: losses in float32
        alpha = torch.sigmoid(logits)
        composite = alpha * batch["fg"] + (1 - alpha) * batch["bg"]
        parts = {
            "bce": F.binary_cross_entropy_with_logits(logits, target),
            "iou": 1 - soft_iou(alpha, target),
            "l1": F.l1_loss(alpha, target),
            "composition": F.l1_loss(composite, batch["image"].float()),
        }
        weights = {"bce": cfg.bce_weight, "iou": cfg.iou_weight, "l1": cfg.l1_weight,
                   "composition": cfg.composition_weight}  # fmt: skip
        return sum(weights[k] * v for k, v in parts.items()), parts

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss, parts = self.compute_loss(self.net.logits(batch["image"]), batch)
        self._stop_if_not_finite(loss, batch, batch_idx)
        size = batch["image"].shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=size)
        for name, value in parts.items():
            self.log(f"train/{name}", value, batch_size=size)
        return loss

    def on_validation_start(self) -> None:
        self.ema.to(self.device)

    def on_validation_epoch_start(self) -> None:
        self._val_records = []

    def validation_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> None:
        alphas = self.ema.module(batch["image"]).float().cpu().numpy()
        targets = batch["alpha"].float().cpu().numpy()
        for key, kind, pred, true in zip(batch["key"], batch["background"], alphas, targets, strict=True):
            self._val_records.append((str(key), str(kind), matte_measures(pred[0], true[0])))

    def on_validation_epoch_end(self) -> None:
        records = gather_records(self._val_records)
        self._val_records = []
        if not records:
            return
        for name, value in mean_measures([m for _, _, m in records]).items():
            self.log(f"val/{name}", value, prog_bar=name == "iou", sync_dist=False)
        self.log("val/samples", float(len(records)), sync_dist=False)
        for kind in sorted({k for _, k, _ in records}):
            iou = mean_measures([m for _, k, m in records if k == kind])["iou"]
            self.log(f"val/iou/{kind}", iou, sync_dist=False)
