"""A Lightning callback that logs training progress: step/max_steps, rate, ETA, latest loss and PSNR.

In: a cadence (`every_s`, default 60; `trainer.progress_every_s` in the training config), an optional
`on_progress(step, max_steps)` hook, a logger and a clock. Out, on global rank 0 only, lines such as

    train: 1200/20000 (6.0%), 3.41 step/s, ETA 01:31:52, loss 0.0231, val PSNR-Y 27.84 dB
    train: done 20000/20000 (100.0%) in 01:37:40, 3.41 step/s, loss 0.0188, val PSNR-Y 28.91 dB

at most every `every_s` seconds and once at the end (also when the run stops early), plus a line per
validation with its PSNR-Y / SSIM-Y. The rate counts only the steps of this run, so a resumed run's ETA
is right. The text is `pipeline.progress.Progress`'s; the numbers are `trainer.global_step`,
`trainer.max_steps` and the latest `train/loss`, `val/psnr_y`, `val/ssim_y` in
`trainer.callback_metrics`. This is what shows a multi-hour run in an Airflow task log or a pod's log.

`with_progress_log(callbacks, every_s)` is the trainer's default: the callbacks plus a `ProgressLog`,
unless the caller passed one (e.g. `train(config, callbacks=[ProgressLog(on_progress=hook)])`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

from lightning.pytorch.callbacks import Callback

from pipeline.progress import Progress

__all__ = ["ProgressLog", "with_progress_log"]

log = logging.getLogger(__name__)


def _metric(metrics: dict[str, Any], key: str) -> float | None:
    value = metrics.get(key)
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, RuntimeError):  # a tensor with more than one element
        return None
    return number if math.isfinite(number) else None


def metrics_text(metrics: dict[str, Any]) -> str:
    """`loss 0.0231, val PSNR-Y 27.84 dB` from the trainer's latest metrics (what is there of it)."""
    parts = []
    loss = _metric(metrics, "train/loss")
    if loss is not None:
        parts.append(f"loss {loss:.4g}")
    psnr = _metric(metrics, "val/psnr_y")
    if psnr is not None:
        parts.append(f"val PSNR-Y {psnr:.2f} dB")
    return ", ".join(parts)


class ProgressLog(Callback):
    """Logs step/max_steps, rate, ETA and the latest loss / val PSNR every `every_s` s on rank 0."""

    def __init__(
        self,
        every_s: float = 60.0,
        on_progress: Callable[[int, int], None] | None = None,
        logger: logging.Logger | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if every_s < 0:
            raise ValueError(f"every_s={every_s} must be >= 0")
        self.every_s = every_s
        self.on_progress = on_progress
        self.logger = logger or log
        self.clock = clock
        self._progress: Progress | None = None

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        if not trainer.is_global_zero:
            return
        total = trainer.max_steps if trainer.max_steps and trainer.max_steps > 0 else 0
        step = trainer.global_step
        self.logger.info(
            "train: %s at step %d of %d, a progress line every %.0f s",
            "resuming" if step else "starting", step, total, self.every_s,
        )  # fmt: skip
        self._progress = Progress(
            total,
            "train",
            self.every_s,
            self.logger,
            callback=self.on_progress,
            clock=self.clock,
            unit="step",
            initial=step,
            extra=lambda: metrics_text(trainer.callback_metrics),
            finish_at_total=False,  # the last validation runs after the last step: on_train_end ends it
        )

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        progress = self._progress
        if progress is not None and trainer.global_step != progress.done:  # accumulation: once per step
            progress.update(trainer.global_step)

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if self._progress is None or trainer.sanity_checking:
            return
        metrics = trainer.callback_metrics
        psnr, ssim = _metric(metrics, "val/psnr_y"), _metric(metrics, "val/ssim_y")
        if psnr is not None:
            ssim_text = f", SSIM-Y {ssim:.4f}" if ssim is not None else ""
            self.logger.info(
                "train: validation at step %d: PSNR-Y %.2f dB%s", trainer.global_step, psnr, ssim_text
            )

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        self._finish(trainer)

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        self._finish(trainer)

    def _finish(self, trainer: Any) -> None:
        progress = self._progress
        if progress is None:
            return
        if trainer.global_step != progress.done:
            progress.update(trainer.global_step)
        progress.finish()


def with_progress_log(callbacks: Sequence[Any], every_s: float = 60.0) -> list[Any]:
    """`callbacks` plus a `ProgressLog(every_s)`, unless one of them already is a `ProgressLog`."""
    callbacks = list(callbacks)
    if not any(isinstance(c, ProgressLog) for c in callbacks):
        callbacks.append(ProgressLog(every_s))
    return callbacks
