"""Train the learned no-reference quality model with Lightning: loss, EMA, exact ranking metrics.

In: training batches {"image": B x 3 x h x w float [0, 1], "target": B float (0..5, higher is better),
"group": B int64 (the reference image: members of one group are the same content at different
distortions), "key": [sample_id]} (training/data/quality.py), and validation batches of whole canvases
that also carry "family" names. Out: a `QualityModule` that Lightning's `Trainer` fits; it logs
`train/loss`, `train/regression`, `train/rank` and `val/srcc` (the checkpoint monitor, higher is
better), `val/plcc`, `val/krcc`, `val/pair_acc`, `val/samples`, `val/srcc/<family>`, and its checkpoints
carry the EMA weights in `checkpoint["ema"]` as SRModule's do.

Loss = regression(score, target) + rank_weight * rank, where
- regression is smooth L1 with beta 0.5 score units by default (`loss`: "smooth_l1" | "l1" | "mse"):
  L1's constant gradient would keep pushing the sigmoid head towards its asymptote for every target of
  5 (each pristine canvas); smooth L1 is quadratic within 0.5 of the target and L1 (robust) beyond;
- rank is a pairwise margin ranking loss over every pair (i, j) of one batch with the same group whose
  targets differ by more than `rank_min_gap`: mean of relu(m_ij - (s_i - s_j) * sign(t_i - t_j)) with
  m_ij = min(rank_margin, |t_i - t_j|). Capping the margin at the target gap makes a prediction that
  equals the targets cost nothing here, so the two terms never pull against each other. Zero when a
  batch has no such pair.

Optimizer, lr schedule (Adam + warmup/cosine from OptimConfig, `training.fit.lit_module.lr_factor`), the
non-finite-loss stop (`NonFiniteLossError`, all ranks agree) and the refusal to checkpoint non-finite
weights are SRModule's own methods, shared unchanged; OptimConfig's ssim/fft weights are SR-only and
ignored here. EMA (training/fit/ema.py) is updated after every optimizer step; validation scores the EMA net.

Validation metrics are exact under DDP: every rank keeps (key, score, target, group, family) per
sample, `gather_records` all-gathers them (torch.distributed.all_gather_object) and sorts by key, so
every rank computes the metrics of exactly the single-process sample set in one order. That needs
disjoint, unpadded per-rank shares (QualityDataModule's); a padding DistributedSampler is refused.
SRCC/PLCC/KRCC are scipy.stats' spearmanr / pearsonr (raw scores, no logistic fit) / kendalltau
(tau-b) over all samples; a correlation that is undefined (constant input, fewer than 2 samples) is
logged as 0, no ranking information. pair_acc is the fraction of same-group pairs with different targets
whose scores are ordered the same way (a score tie counts one half). `val/srcc/<family>` is over that
family's samples (pristine, with a constant target, has none).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import chain
from typing import Any, Literal

import lightning.pytorch as pl
import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator
from scipy import stats
from torch import nn
from torch.utils.data import DistributedSampler

from training.archs.quality_net import build_quality_arch, check_quality_arch
from training.fit.ema import ModelEMA
from training.fit.lit_module import OptimConfig, SRModule

SMOOTH_L1_BETA = 0.5  # score units: quadratic within half a point of the target
PAIR_TIE = 1e-9  # targets closer than this are the same grade for val/pair_acc

Record = tuple[str, float, float, int, str]  # (sample key, score, target, group, family)


class QualityModelConfig(BaseModel):
    """Which quality arch to train and how its loss weighs regression against in-group ranking."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    arch: str = "quality_net"
    arch_options: dict[str, Any] = Field(default_factory=dict)
    loss: Literal["smooth_l1", "l1", "mse"] = "smooth_l1"
    rank_weight: float = Field(default=1.0, ge=0)
    rank_margin: float = Field(default=0.1, ge=0)  # score units (0..5), capped per pair at the target gap
    rank_min_gap: float = Field(default=0.05, ge=0)  # pairs whose targets differ by no more are ties

    @model_validator(mode="after")
    def _known_arch(self) -> QualityModelConfig:
        check_quality_arch(self.arch, self.arch_options)
        return self


def regression_loss(scores: torch.Tensor, targets: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "smooth_l1":
        return F.smooth_l1_loss(scores, targets, beta=SMOOTH_L1_BETA)
    if kind == "l1":
        return F.l1_loss(scores, targets)
    if kind == "mse":
        return F.mse_loss(scores, targets)
    raise ValueError(f"unknown regression loss {kind!r}; use smooth_l1, l1 or mse")


def pairwise_rank_loss(
    scores: torch.Tensor, targets: torch.Tensor, groups: torch.Tensor, margin: float, min_gap: float
) -> tuple[torch.Tensor, int]:
    """(mean hinge over same-group pairs whose targets differ by > min_gap, number of such pairs)."""
    gap = targets[:, None] - targets[None, :]
    pairs = (groups[:, None] == groups[None, :]) & (gap.abs() > min_gap)
    pairs = torch.triu(pairs, diagonal=1)  # each unordered pair once
    ordered = (scores[:, None] - scores[None, :]) * torch.sign(gap)
    hinge = F.relu(gap.abs().clamp(max=margin) - ordered)
    count = int(pairs.sum())
    return (hinge * pairs).sum() / max(count, 1), count


def _correlation(fn: Any, scores: np.ndarray, targets: np.ndarray) -> float:
    if len(scores) < 2 or np.ptp(scores) == 0 or np.ptp(targets) == 0:
        return 0.0  # undefined: a constant prediction (or target) carries no ranking information
    return float(fn(scores, targets).statistic)


def pair_accuracy(scores: np.ndarray, targets: np.ndarray, groups: np.ndarray) -> float:
    """Fraction of same-group pairs with different targets whose scores are ordered alike (ties: 1/2)."""
    correct, total = 0.0, 0
    for group in np.unique(groups):
        member = groups == group
        gap = targets[member][:, None] - targets[member][None, :]
        pairs = np.triu(np.abs(gap) > PAIR_TIE, k=1)
        agreement = np.sign(scores[member][:, None] - scores[member][None, :]) * np.sign(gap)
        correct += float(((agreement[pairs] + 1.0) / 2.0).sum())
        total += int(pairs.sum())
    return correct / total if total else 0.0


def quality_metrics(records: Sequence[Record]) -> dict[str, float]:
    """The validation metrics of one sample set (names without the `val/` prefix)."""
    scores = np.array([r[1] for r in records], dtype=np.float64)
    targets = np.array([r[2] for r in records], dtype=np.float64)
    groups = np.array([r[3] for r in records], dtype=np.int64)
    families = np.array([r[4] for r in records], dtype=object)
    metrics = {
        "srcc": _correlation(stats.spearmanr, scores, targets),
        "plcc": _correlation(stats.pearsonr, scores, targets),
        "krcc": _correlation(stats.kendalltau, scores, targets),
        "pair_acc": pair_accuracy(scores, targets, groups),
        "samples": float(len(records)),
    }
    for family in sorted(set(families.tolist())):
        mine = families == family
        if mine.sum() >= 2 and np.ptp(targets[mine]) > 0:
            metrics[f"srcc/{family}"] = _correlation(stats.spearmanr, scores[mine], targets[mine])
    return metrics


def merge_shares(shares: Sequence[Sequence[Record]]) -> list[Record]:
    """All ranks' records in one order that does not depend on how they were split."""
    return sorted(chain.from_iterable(shares))


def gather_records(local: Sequence[Record]) -> list[Record]:
    """Every rank's validation records, merged, on every rank (the local ones without a process group)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return merge_shares([local])
    shares: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(shares, list(local))
    return merge_shares(shares)


class QualityModule(pl.LightningModule):
    def __init__(
        self, model: QualityModelConfig | dict[str, Any], optim: OptimConfig | dict[str, Any]
    ) -> None:
        super().__init__()
        self.model_cfg = (
            model if isinstance(model, QualityModelConfig) else QualityModelConfig.model_validate(model)
        )
        self.optim_cfg = optim if isinstance(optim, OptimConfig) else OptimConfig.model_validate(optim)
        # Plain dicts, so checkpoints load with weights_only=True and hparams.yaml stays readable.
        self.save_hyperparameters(
            {"model": self.model_cfg.model_dump(), "optim": self.optim_cfg.model_dump()}
        )
        self.net = build_quality_arch(self.model_cfg.arch, **self.model_cfg.arch_options)
        self.ema = ModelEMA(self.net, decay=self.optim_cfg.ema_decay, warmup=self.optim_cfg.ema_warmup)
        self._val_records: list[Record] = []

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

    # --- training -------------------------------------------------------------------------------
    def compute_loss(
        self, scores: torch.Tensor, targets: torch.Tensor, groups: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Total loss and its parts: regression to the targets, in-group rank hinge."""
        cfg = self.model_cfg
        scores, targets = scores.float(), targets.float()  # bf16 autocast: losses in float32
        regression = regression_loss(scores, targets, cfg.loss)
        rank, _ = pairwise_rank_loss(scores, targets, groups, cfg.rank_margin, cfg.rank_min_gap)
        return regression + cfg.rank_weight * rank, {"regression": regression, "rank": rank}

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss, parts = self.compute_loss(self.net(batch["image"]), batch["target"], batch["group"])
        self._stop_if_not_finite(loss, batch, batch_idx)
        size = batch["image"].shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=size)
        for name, value in parts.items():
            self.log(f"train/{name}", value, batch_size=size)
        return loss

    # --- validation ------------------------------------------------------------------------------

    def on_validation_start(self) -> None:
        self.ema.to(self.device)
        loaders = self.trainer.val_dataloaders
        if isinstance(loaders, Mapping):
            loaders = list(loaders.values())
        for loader in loaders if isinstance(loaders, Sequence) else [loaders]:
            sampler = getattr(loader, "sampler", None)
            if isinstance(sampler, DistributedSampler) and sampler.total_size != len(sampler.dataset):
                raise ValueError(
                    f"the validation sampler covers {sampler.total_size} samples for a dataset of "
                    f"{len(sampler.dataset)}: repeated samples would bias val/srcc; build the Trainer with "
                    "use_distributed_sampler=False (QualityDataModule splits validation itself)"
                )

    def on_validation_epoch_start(self) -> None:
        self._val_records = []

    def validation_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> None:
        scores = self.ema.module(batch["image"]).float().cpu().tolist()
        targets = batch["target"].float().cpu().tolist()
        groups = batch["group"].cpu().tolist()
        for key, score, target, group, family in zip(
            batch["key"], scores, targets, groups, batch["family"], strict=True
        ):
            self._val_records.append((str(key), float(score), float(target), int(group), str(family)))

    def on_validation_epoch_end(self) -> None:
        records = gather_records(self._val_records)  # every rank joins, also with no records
        self._val_records = []
        if not records:
            return
        # Already global (every rank holds every record): logged as is, no second reduction.
        for name, value in quality_metrics(records).items():
            self.log(f"val/{name}", value, prog_bar=name == "srcc", sync_dist=False)

    # --- checkpoints -----------------------------------------------------------------------------


def ema_quality_net_from_checkpoint(checkpoint: Mapping[str, Any]) -> nn.Module:
    """The EMA-weighted quality net (what validation scored) from a loaded QualityModule checkpoint dict."""
    model_cfg = QualityModelConfig.model_validate(checkpoint["hyper_parameters"]["model"])
    net = build_quality_arch(model_cfg.arch, **model_cfg.arch_options)
    net.load_state_dict(checkpoint["ema"]["weights"])
    return net.eval()
