"""Lightning callbacks for training tests: record each step's sample keys, and kill a run at a given step.

In: the step to kill at (None: never). Out: `Recorder.steps` ({global step: sample keys}); `Killed` raised
at the start of step `kill_at`, as a killed process would stop there (before that step's update);
`kill_and_resume`, the whole-run / killed-and-resumed pair of runs a task's exact-resume test compares.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
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


RESUME_RUN = ["trainer.max_steps=6", "trainer.val_check_interval=3", "trainer.checkpoint_every_n_steps=3"]


def kill_and_resume(config: Callable[..., Any], folder: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train `config(output, *RESUME_RUN)` straight through, and again killed at step 5 then rerun (resuming
    from the step-3 checkpoint); asserts the resumed run trained on exactly the samples the whole run did
    and that both end at step 6 with the same loader position and weights (live and EMA). Returns both
    last checkpoints (whole, resumed) for the task's own comparisons."""
    from training.fit.checkpoint import load_checkpoint
    from training.fit.train import train

    whole, killed, resumed = Recorder(), Recorder(kill_at=5), Recorder()
    train(config(f"file://{folder}/whole", *RESUME_RUN), callbacks=[whole])
    with pytest.raises(Killed):
        train(config(f"file://{folder}/killed", *RESUME_RUN), callbacks=[killed])
    train(config(f"file://{folder}/killed", *RESUME_RUN), callbacks=[resumed])
    assert sorted(resumed.steps) == [3, 4, 5]
    assert {**{s: k for s, k in killed.steps.items() if s < 3}, **resumed.steps} == whole.steps
    a, b = (load_checkpoint(f"file://{folder}/{name}/checkpoints/last.ckpt") for name in ("whole", "killed"))
    (loader,) = [key for key in a if key.endswith("DataModule")]  # the task's data module state
    assert a["global_step"] == b["global_step"] == 6 and a[loader] == b[loader] and a[loader]["batches"] > 0
    for section in ("state_dict", "ema_state_dict"):
        for name, tensor in a[section].items():
            assert torch.equal(tensor, b[section][name]), (section, name)
    return a, b
