"""Launcher: where a DAG's `train` task runs the training, chosen by the `launch` settings.

In: a TrainConfig, `LaunchConfig` (settings section `launch`: `kind` local | kubernetes, and the
Kubernetes Job's settings), the run's name, a callback per output line, an optional timeout. Out: 0 when
the training finished (its result.json is then at `config.output`); `TrainingFailed` otherwise.

`local` (the default) runs `python -m training.fit.train` as a process group of the task (training/fit/launch.py);
`kubernetes` submits an Indexed Job built from infra/k8s/train-job.yaml and waits for it
(training/fit/launch_k8s.py). Either way a killed or timed-out task ends the training with it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from training.fit.launch import run_local
from training.fit.launch_k8s import KubernetesLaunch


class LaunchConfig(BaseModel):
    """Where a DAG's training runs (settings `launch.*`, e.g. `CRISP_LAUNCH__KIND=kubernetes`)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["local", "kubernetes"] = "local"  # local: a subprocess of the task; kubernetes: a Job
    kubernetes: KubernetesLaunch = Field(default_factory=KubernetesLaunch)


def launch_training(
    config,
    launch: LaunchConfig,
    run_name: str,
    on_line: Callable[[str], None] = lambda line: None,
    timeout_s: float | None = None,
) -> int:
    """Train `config` where `launch` says; 0 when trained, else TrainingFailed."""
    if launch.kind == "kubernetes":
        from training.fit.launch_k8s import run_job, train_job

        return run_job(train_job(config, launch.kubernetes, run_name), launch.kubernetes, on_line, timeout_s)
    return run_local(config, on_line, timeout_s)
