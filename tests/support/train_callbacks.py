"""Lightning callbacks for training tests: record each step's sample keys, and kill a run at a given step.

In: the step to kill at (None: never). Out: `Recorder.steps` ({global step: sample keys}); `Killed` raised
at the start of step `kill_at`, as a killed process would stop there (before that step's update)."""

from __future__ import annotations

from lightning.pytorch.callbacks import Callback


class Killed(RuntimeError):
    pass


class Recorder(Callback):
    """Records the sample keys of every training step; raises `Killed` at the start of step `kill_at`."""

    def __init__(self, kill_at: int | None = None) -> None:
        self.steps: dict[int, list[str]] = {}
        self.kill_at = kill_at

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.kill_at:
            raise Killed(f"simulated kill at step {self.kill_at}")
        self.steps[trainer.global_step] = list(batch["key"])
