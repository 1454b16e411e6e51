"""ProgressLog: step/max_steps, rate, ETA and the latest loss / val PSNR on a fake clock, rank 0 only;
and in a real 2-step tiny training, as train()'s default callback or the caller's own with a hook."""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace

import torch

from training.fit.progress import ProgressLog, metrics_text, with_progress_log
from training.fit.train import load_train_config, train

LOGGER = "training.fit.progress"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _trainer(rank0: bool = True, step: int = 0, max_steps: int = 100) -> SimpleNamespace:
    return SimpleNamespace(
        is_global_zero=rank0,
        global_step=step,
        max_steps=max_steps,
        callback_metrics={},
        sanity_checking=False,
    )


def _lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


def test_lines_with_rate_eta_and_metrics_on_a_fake_clock(caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    clock, calls = Clock(), []
    callback = ProgressLog(every_s=60, on_progress=lambda s, t: calls.append((s, t)), clock=clock)
    trainer = _trainer(step=20)  # resumed at step 20: the rate counts this run's steps only
    callback.on_train_start(trainer, None)
    for _ in range(40):
        clock.now += 1.0
        trainer.global_step += 1
        trainer.callback_metrics["train/loss"] = torch.tensor(0.0234567)
        callback.on_train_batch_end(trainer, None, None, None, 0)
    callback.on_train_batch_end(trainer, None, None, None, 0)  # same step again (accumulation): ignored
    trainer.callback_metrics.update({"val/psnr_y": torch.tensor(27.8412), "val/ssim_y": 0.81234})
    callback.on_validation_end(trainer, None)
    for _ in range(20):
        clock.now += 1.0
        trainer.global_step += 1
        callback.on_train_batch_end(trainer, None, None, None, 0)
    clock.now += 5.0
    callback.on_train_end(trainer, None)
    assert _lines(caplog) == [
        "train: resuming at step 20 of 100, a progress line every 60 s",
        "train: validation at step 60: PSNR-Y 27.84 dB, SSIM-Y 0.8123",
        "train: 80/100 (80.0%), 1.00 step/s, ETA 00:00:20, loss 0.02346, val PSNR-Y 27.84 dB",
        "train: stopped at 80/100 (80.0%) in 00:01:05, 0.92 step/s, loss 0.02346, val PSNR-Y 27.84 dB",
    ]
    assert calls[0] == (21, 100) and calls[-1] == (80, 100) and len(calls) == 60


def test_other_ranks_say_nothing_and_an_exception_still_ends_with_a_line(caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    calls = []
    quiet = ProgressLog(every_s=0, on_progress=lambda s, t: calls.append((s, t)))
    trainer = _trainer(rank0=False)
    quiet.on_train_start(trainer, None)
    trainer.global_step = 5
    quiet.on_train_batch_end(trainer, None, None, None, 0)
    quiet.on_validation_end(trainer, None)
    quiet.on_train_end(trainer, None)
    assert _lines(caplog) == [] and calls == []

    clock = Clock()
    loud, trainer = ProgressLog(every_s=600, clock=clock), _trainer(max_steps=10)
    loud.on_train_start(trainer, None)
    clock.now, trainer.global_step = 4.0, 2
    loud.on_exception(trainer, None, RuntimeError("boom"))
    loud.on_train_end(trainer, None)  # the final line comes once
    assert _lines(caplog)[1:] == ["train: stopped at 2/10 (20.0%) in 00:00:04, 0.50 step/s"]


def test_metrics_text_and_the_default_callback():
    assert metrics_text({}) == ""
    assert metrics_text({"train/loss": float("nan"), "val/psnr_y": torch.tensor([1.0, 2.0])}) == ""
    assert metrics_text({"train/loss": 1.5, "val/psnr_y": 30.0}) == "loss 1.5, val PSNR-Y 30.00 dB"
    mine = ProgressLog(every_s=5)
    assert with_progress_log([mine]) == [mine]
    added = with_progress_log(["other"], 7.0)
    assert added[0] == "other" and isinstance(added[1], ProgressLog) and added[1].every_s == 7.0


def test_a_tiny_training_logs_its_progress(tiny_pairs, tmp_path: Path, caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    tiny = ["data.patch_size=16", "data.batch_size=4", "data.block_size=2", "data.shuffle_window=2",
            "data.workers=0", "trainer.enable_progress_bar=false", "trainer.max_steps=2", "optim.warmup_steps=0",
            "trainer.val_check_interval=2", "trainer.progress_every_s=0.001"]  # fmt: skip
    config = load_train_config(None, [f"data.root={tiny_pairs.root}", f"output=file://{tmp_path}", *tiny])
    calls = []
    result = train(config, callbacks=[ProgressLog(every_s=0, on_progress=lambda s, t: calls.append((s, t)))])
    assert result.global_step == 2 and calls == [(1, 2), (2, 2)]
    lines = _lines(caplog)
    assert lines[0] == "train: starting at step 0 of 2, a progress line every 0 s"  # the caller's, not a 2nd
    assert (
        lines[1].startswith("train: 1/2 (50.0%), ") and " step/s, ETA " in lines[1] and ", loss " in lines[1]
    )
    assert lines[2].startswith("train: 2/2 (100.0%), ") and "ETA 00:00:00" in lines[2]
    assert lines[3].startswith("train: validation at step 2: PSNR-Y ") and "SSIM-Y" in lines[3]
    assert lines[4].startswith("train: done 2/2 (100.0%) in 00:00:") and ", val PSNR-Y " in lines[4]
    assert len(lines) == 5

    caplog.clear()  # no ProgressLog passed: train() adds one with trainer.progress_every_s
    train(config.model_copy(update={"output": f"file://{tmp_path / 'default'}"}))
    assert _lines(caplog)[0] == "train: starting at step 0 of 2, a progress line every 0 s"
    assert _lines(caplog)[-1].startswith("train: done 2/2 (100.0%)")
