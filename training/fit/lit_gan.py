"""Fine-tune a super-resolution generator adversarially: L1 + weight-free perceptual terms + a PatchGAN critic.

In: the batches SRModule takes ({"lr", "hr"}) and a `GanModelConfig` (ModelConfig plus the GAN's knobs),
usually with `init_from` = the L1 twin's checkpoint, whose EMA weights start the generator and its EMA.
Out: a `GANModule` that the shared trainer fits like any task's module; it logs `train/loss` and its parts
(`l1`, `ms_ssim`, `feature_match`, `adversarial`, `d_real`, `d_fake`), validates the generator's EMA
exactly as SRModule does (PSNR-Y / SSIM-Y), and its checkpoints hold the generator, its EMA, the
discriminator (spectral-norm vectors included) and the one optimizer's state, so a killed run resumes
exactly through the stack's usual `last.ckpt`.

The losses (Real-ESRGAN's recipe with its VGG term replaced, since no pretrained weights can be fetched):
- generator: `l1_weight` * L1 + `ms_ssim_weight` * (1 - MS-SSIM) (torchmetrics, `ms_ssim_scales` scales,
  no weights) + `feature_match_weight` * L1 between the critic's hidden activations on the generated and
  the real patch (pix2pixHD's feature matching: a perceptual distance the critic learns) +
  `adversarial_weight` * the non-saturating GAN loss;
- critic: BCE on real (1) and generated (0, detached) patches.

One optimizer step per batch updates both networks: Adam with one parameter group each (critic lr =
lr * `d_lr_ratio`), the critic frozen while the generator's terms are built and the generator detached in
the critic's. That is the same update as Real-ESRGAN's alternating G-then-D steps (its D step scores the
output computed before the G step), but it keeps one optimizer and one scheduler, so `global_step`,
`max_steps`, the lr schedule, EMA and resume mean what they mean for every other task. Gradient clipping
is applied per network (a joint norm would let the critic's gradients shrink the generator's).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn
from torchmetrics.functional.image import multiscale_structural_similarity_index_measure

from training.archs.discriminator import PatchDiscriminator
from training.fit.ema import ModelEMA
from training.fit.lit_module import ModelConfig, OptimConfig, SRModule

MS_SSIM_BETAS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)  # Wang et al. 2003, coarsest last
MS_SSIM_KERNEL = 11


class GanModelConfig(ModelConfig):
    """The generator (ModelConfig: arch, scale, options), where it starts, the critic and the loss weights."""

    init_from: str | None = None  # the L1 twin's checkpoint (path / file:// / s3://): its EMA weights start G
    discriminator: dict[str, Any] = Field(default_factory=dict)  # PatchDiscriminator options
    l1_weight: float = Field(default=1.0, ge=0)
    ms_ssim_weight: float = Field(default=1.0, ge=0)
    ms_ssim_scales: int = Field(default=3, ge=1, le=5)  # HR patches >= 11 * (scales - 1) ** 2 px (3: 44)
    feature_match_weight: float = Field(default=1.0, ge=0)
    adversarial_weight: float = Field(default=0.1, gt=0)  # Real-ESRGAN's GAN weight
    d_lr_ratio: float = Field(default=1.0, gt=0)

    @model_validator(mode="after")
    def _known_discriminator_options(self) -> GanModelConfig:
        accepted = set(inspect.signature(PatchDiscriminator.__init__).parameters) - {"self"}
        unknown = set(self.discriminator) - accepted
        if unknown:
            raise ValueError(
                f"discriminator has no option(s) {sorted(unknown)}; its options are {sorted(accepted)}"
            )
        return self


@contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """`module`'s parameters take no gradient inside the block (the graph still flows through it)."""
    flags = [p.requires_grad for p in module.parameters()]
    for p in module.parameters():
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(module.parameters(), flags, strict=True):
            p.requires_grad_(flag)


class GANModule(SRModule):
    def __init__(self, model: GanModelConfig | dict[str, Any], optim: OptimConfig | dict[str, Any]) -> None:
        model = model if isinstance(model, GanModelConfig) else GanModelConfig.model_validate(model)
        super().__init__(model, optim)
        self.disc = PatchDiscriminator(**model.discriminator)

    def setup(self, stage: str) -> None:
        # Before a resumed run's checkpoint is restored (which then replaces these weights): start from the twin.
        if stage == "fit" and self.model_cfg.init_from and self.trainer.ckpt_path is None:
            self.load_generator(self.model_cfg.init_from)

    def load_generator(self, uri: str) -> None:
        """Start the generator and its EMA from the EMA weights of checkpoint `uri` (same arch and scale)."""
        from training.gates.safe_load import safe_load

        cfg = self.model_cfg
        twin, meta = safe_load(uri, expected_scale=cfg.scale)
        if meta.arch != cfg.arch:
            raise ValueError(f"init_from {uri} is a {meta.arch!r} model; this generator is {cfg.arch!r}")
        try:
            self.net.load_state_dict(twin.state_dict())
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[-1].strip()
            raise ValueError(
                f"init_from {uri}: its {meta.arch} weights do not fit model.arch_options "
                f"{cfg.arch_options} ({first})"
            ) from None
        self.ema = ModelEMA(self.net, decay=self.optim_cfg.ema_decay, warmup=self.optim_cfg.ema_warmup)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        cfg = self.model_cfg
        hr = batch["hr"]
        sr = self.net(batch["lr"])
        real_logits, real_features = self.disc(hr)
        with frozen(self.disc):
            fake_logits, fake_features = self.disc(sr)
        parts = {"l1": F.l1_loss(sr, hr)}
        if cfg.ms_ssim_weight > 0:
            parts["ms_ssim"] = 1.0 - self._ms_ssim(sr, hr)
        parts["feature_match"] = torch.stack(
            [F.l1_loss(f, r.detach()) for f, r in zip(fake_features, real_features, strict=True)]
        ).mean()
        parts["adversarial"] = F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
        generator_loss = (
            cfg.l1_weight * parts["l1"]
            + cfg.ms_ssim_weight * parts.get("ms_ssim", 0.0)
            + cfg.feature_match_weight * parts["feature_match"]
            + cfg.adversarial_weight * parts["adversarial"]
        )
        critic_logits, _ = self.disc(sr.detach())
        parts["d_real"] = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
        parts["d_fake"] = F.binary_cross_entropy_with_logits(critic_logits, torch.zeros_like(critic_logits))
        loss = generator_loss + parts["d_real"] + parts["d_fake"]
        self._stop_if_not_finite(loss, batch, batch_idx)
        size = hr.shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=size)
        self.log("train/generator_loss", generator_loss, batch_size=size)
        for name, value in parts.items():
            self.log(f"train/{name}", value, batch_size=size)
        return loss

    def _ms_ssim(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        betas = MS_SSIM_BETAS[: self.model_cfg.ms_ssim_scales]
        side = min(hr.shape[-2:])
        needed = max(MS_SSIM_KERNEL * max(1, len(betas) - 1) ** 2, 2 ** len(betas))  # torchmetrics' bound
        if side < needed:
            raise ValueError(
                f"MS-SSIM over {len(betas)} scales needs HR patches of at least {needed} px, got {side}: "
                "raise data.patch_size or lower model.ms_ssim_scales"
            )
        total = sum(betas)
        return multiscale_structural_similarity_index_measure(
            sr.float(), hr.float(), data_range=1.0, kernel_size=MS_SSIM_KERNEL,
            betas=tuple(b / total for b in betas),
        )  # fmt: skip

    def param_groups(self) -> list[dict[str, Any]]:
        ratio = self.model_cfg.d_lr_ratio
        return [
            *super().param_groups(),
            {"params": list(self.disc.parameters()), "lr": self.optim_cfg.lr * ratio},
        ]

    def configure_gradient_clipping(
        self,
        optimizer: Any,
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str | None = None,
    ) -> None:
        if gradient_clip_val is None or gradient_clip_algorithm == "value":
            return super().configure_gradient_clipping(optimizer, gradient_clip_val, gradient_clip_algorithm)
        for group in optimizer.param_groups:
            torch.nn.utils.clip_grad_norm_(group["params"], gradient_clip_val)
        return None
