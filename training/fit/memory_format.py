"""Lay a LightningModule's convolution weights out channels-last (NHWC) before it trains: faster steps.

In: `trainer.channels_last` (TrainerConfig, default True) picks whether train() adds `ChannelsLast` to
the trainer's callbacks. Out: at `setup`, every 4-D parameter and buffer of the module, and of each EMA
copy it holds (training/fit/ema.py), in torch.channels_last; nothing else changes.

Why: oneDNN's CPU convolutions run faster on NHWC (cuDNN's tensor-core ones are said to as well: not
measured here, no GPU was lent). Measured on the 2-core dev box (2026-12-08, Intel CPU with AVX-512 and
AMX; fwd + bwd + Adam, interleaved runs, median of 5, a script not committed): QualityNet 32 x 224 px,
1 thread, 0.299 -> 0.255 s a step; FFDNet 16 x 64 px, 2 threads, 0.330 -> 0.291; FrameFusion (5 frames)
16 x 24 px, 2 threads, 0.162 -> 0.141.
Converting the inputs as well gained nothing more: a convolution whose weight is channels-last runs
channels-last and its output stays so, so the batches stay NCHW.

What it does not change: the values are those of the NCHW kernels up to float rounding (another
summation order), so a run resumes bit for bit with itself but is not bit-equal to an NCHW run of the
same config. Checkpoints keep the strides (torch.save), and loading one into an NCHW module copies
values, so exports (ONNX), gates and serving see ordinary weights.
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback

from training.fit.ema import ModelEMA

__all__ = ["ChannelsLast"]


class ChannelsLast(Callback):
    """Before fitting (and before DDP wraps it), move the module and its EMA copies to channels-last."""

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        pl_module.to(memory_format=torch.channels_last)
        for value in vars(pl_module).values():  # ModelEMA is no nn.Module: not reached by .to()
            if isinstance(value, ModelEMA):
                value.module.to(memory_format=torch.channels_last)
