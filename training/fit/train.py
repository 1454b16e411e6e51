"""Train a model of any task from committed sample partitions: one config in, checkpoints out.

In: a `TrainConfig` (the task, training/tasks: its `model` and `data` sections are the task's config types,
its Lightning and data modules are built, its monitor picks best.ckpt; optim from training/fit/lit_module.py,
trainer settings, an output root URI), or a YAML file plus `key.sub=value` overrides
(`python -m training.fit.train --config training/configs/espcn_x4.yaml --set trainer.max_steps=100`); there,
as under `crisp train`, the Crisp settings (CRISP_CONFIG / CRISP_ROOT / CRISP_S3__*) supply `data.root`,
`output` (<root>/runs/sr_train) and the S3 options that the YAML leaves out
(`crisp.commands.train.train_config_from_settings`).
Out: `TrainResult(best_ckpt_uri, last_ckpt_uri, metrics, global_step)`; on storage under `output`:
checkpoints/{last,best}.ckpt (+ .json sidecars), logs/ (CSV), result.json.

Before anything starts: unknown arch / bad arch options (ModelConfig), unknown recipe, recipe/scale
mismatch, empty or uncommitted data, too few pairs for one batch per rank and worker, and devices that
do not exist all raise ValueError with the fix. A non-finite loss stops the run (SRModule's guard).
With `resume: auto` (default) a run whose output already holds `last.ckpt` of the same model and data
continues from it, mid-epoch included (the loader position is in the checkpoint).

Distributed training (Lightning DDP; strategy "ddp" whenever more than one process):
- One machine: `trainer.devices: N` (GPUs, or CPU processes with gloo). Lightning re-launches this
  entry point for ranks 1..N-1, so start it as `python -m training.fit.train` or `crisp train`.
- torchrun (bare metal or a Kubernetes pod / PyTorchJob): on every node run
  `torchrun --nnodes=$NNODES --nproc-per-node=$GPUS --node-rank=$NODE_RANK --master-addr=$MASTER_ADDR
  --master-port=29500 -m training.fit.train --config C --set trainer.devices=$GPUS --set trainer.num_nodes=$NNODES`;
  Lightning reads RANK / LOCAL_RANK / WORLD_SIZE from torchrun and launches nothing itself.
- SLURM: `srun --ntasks-per-node=$GPUS python -m training.fit.train ...` with the same two overrides;
  Lightning reads SLURM_PROCID / SLURM_LOCALID / SLURM_NTASKS and the node list.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
import torch
import yaml
from lightning.pytorch.loggers import CSVLogger, MLFlowLogger
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, ValidationError, model_validator

from pipeline.scratch import ScratchDir, collect_stale_scratch
from pipeline.storage import Storage
from schemas.errors import InputError
from training.data.catalog import DataError
from training.data.module import DataConfig
from training.fit.checkpoint import (
    CrispCheckpointIO,
    checkpoint_callbacks,
    code_version,
    crisp_meta,
    fetch_checkpoint,
)
from training.fit.lit_module import ModelConfig, OptimConfig
from training.fit.memory_format import ChannelsLast
from training.fit.progress import with_progress_log
from training.tasks import KNOWN, get_task


class TrainConfigError(InputError, ValueError):
    """The training configuration is invalid; the message names the key and the fix."""


class TrainerConfig(BaseModel):
    """How Lightning runs: hardware, length, validation/checkpoint cadence, logging."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_steps: int = Field(default=1000, ge=1)
    devices: int | Literal["auto"] = 1  # per node: GPUs, or CPU processes; "auto" = all GPUs / 1 CPU process
    num_nodes: int = Field(default=1, ge=1)
    accelerator: Literal["auto", "cpu", "gpu", "cuda"] = "auto"
    strategy: Literal["auto", "ddp"] = "auto"
    precision: Literal["32-true", "32", "bf16-mixed", "16-mixed"] | None = None  # None: 32 CPU, bf16 GPU
    val_check_interval: int = Field(default=500, ge=1)  # optimizer steps between validations
    checkpoint_every_n_steps: int | None = Field(default=None, ge=1)  # last.ckpt cadence; None = val cadence
    gradient_clip_val: float | None = Field(default=None, gt=0)
    log_every: int = Field(default=50, ge=1)
    num_sanity_val_steps: int = Field(default=0, ge=0)
    enable_progress_bar: bool = True
    progress_every_s: float = Field(default=60.0, gt=0)  # cadence of the "train: step/max_steps" log line
    channels_last: bool = True  # NHWC weights, 12-16% faster CPU steps (training/fit/memory_format.py)


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    task: Literal[KNOWN] = "sr"  # the model kind (training/tasks): its configs, Lightning and data modules
    model: SerializeAsAny[BaseModel] = Field(default_factory=ModelConfig)  # the task's model_config type
    optim: OptimConfig = Field(default_factory=OptimConfig)
    data: SerializeAsAny[BaseModel] = Field(default_factory=DataConfig)  # the task's data_config type
    trainer: TrainerConfig = Field(default_factory=TrainerConfig)
    output: str = "file://./runs/sr_train"  # run root: checkpoints/, logs/, result.json
    output_storage_options: dict[str, Any] = Field(default_factory=dict)
    seed: int = 0  # weights init; the loader has its own data.seed
    resume: Literal["auto", "never"] = "auto"
    mlflow_tracking_uri: str | None = None  # set to log to MLflow as well as CSV
    mlflow_experiment: str = "crisp-sr"

    @model_validator(mode="before")
    @classmethod
    def _task_sections(cls, values: Any) -> Any:
        """`model` and `data` validated as the task's own config types (SR's by default)."""
        if not isinstance(values, dict):
            return values
        task = get_task(values.get("task", "sr"))
        sections = {}
        for key, section_type in (("model", task.model_config), ("data", task.data_config)):
            value = values.get(key, {})
            if not isinstance(value, section_type):
                value = section_type.model_validate(
                    value.model_dump() if isinstance(value, BaseModel) else value
                )
            sections[key] = value
        return {**values, **sections}

    @model_validator(mode="after")
    def _schedule_fits(self) -> TrainConfig:
        total = self.optim.max_steps or self.trainer.max_steps
        if self.optim.warmup_steps >= total:
            raise ValueError(
                f"optim.warmup_steps={self.optim.warmup_steps} must be below the {total} training steps"
            )
        return self


@dataclass(frozen=True)
class TrainResult:
    best_ckpt_uri: str | None
    last_ckpt_uri: str
    metrics: dict[str, float] = field(default_factory=dict)
    global_step: int = 0


@dataclass(frozen=True)
class Hardware:
    accelerator: str
    devices: int
    strategy: str
    precision: str


def resolve_hardware(
    cfg: TrainerConfig, cuda_devices: int | None = None, cpu_cores: int | None = None
) -> Hardware:
    """Pick accelerator/devices/strategy/precision; ValueError for devices this machine does not have."""
    cuda = torch.cuda.device_count() if cuda_devices is None else cuda_devices
    cores = (os.cpu_count() or 1) if cpu_cores is None else cpu_cores
    accelerator = ("gpu" if cuda else "cpu") if cfg.accelerator == "auto" else cfg.accelerator
    if accelerator in ("gpu", "cuda"):
        if cuda == 0:
            raise TrainConfigError(
                f"trainer.accelerator={cfg.accelerator} but no CUDA GPU is visible; use cpu"
            )
        devices = cuda if cfg.devices == "auto" else cfg.devices
        if devices > cuda:
            raise TrainConfigError(
                f"trainer.devices={devices} but only {cuda} GPU(s) are visible on this node"
            )
        precision = cfg.precision or ("bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed")
    else:
        devices = 1 if cfg.devices == "auto" else cfg.devices
        if devices > cores:
            raise TrainConfigError(
                f"trainer.devices={devices} but no GPU is visible and this machine has {cores} CPU core(s): "
                f"lower trainer.devices to at most {cores} (one CPU process each) or run on a GPU node"
            )
        precision = cfg.precision or "32-true"
    if devices < 1:
        raise TrainConfigError(f"trainer.devices must be >= 1, got {devices}")
    strategy = "ddp" if devices * cfg.num_nodes > 1 or cfg.strategy == "ddp" else "auto"
    return Hardware(accelerator, devices, strategy, precision)


def _set(tree: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = tree
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise TrainConfigError(f"override {dotted!r}: {part!r} is not a section")
    node[leaf] = value


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        out[key] = (
            _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


def load_train_config(
    path: str | Path | None, overrides: list[str] = (), defaults: dict[str, Any] | None = None
) -> TrainConfig:
    """defaults < YAML file < `key.sub=value` overrides (values parsed as YAML); TrainConfigError on problems."""
    data: dict[str, Any] = {}
    if path:
        p = Path(path)
        if not p.is_file():
            raise TrainConfigError(f"training config {p} does not exist")
        data = yaml.safe_load(p.read_text()) or {}
        if not isinstance(data, dict):
            raise TrainConfigError(
                f"training config {p} must be a mapping with model/optim/data/trainer sections"
            )
    data = _merge(defaults or {}, data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise TrainConfigError(f"override {item!r} must look like section.key=value")
        _set(data, key.strip(), yaml.safe_load(raw) if raw.strip() else None)
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}" if e["loc"] else e["msg"] for e in exc.errors()
        )
        raise TrainConfigError(f"invalid training config ({path or 'defaults'}): {problems}") from None


def train(config: TrainConfig, callbacks: list[Any] | None = None) -> TrainResult:
    """Check everything, then fit; returns where the checkpoints went and the final metrics."""
    hardware = resolve_hardware(config.trainer)
    datamodule = get_task(config.task).make_data(config.data, config.model)
    datamodule.check(world_size=hardware.devices * config.trainer.num_nodes)
    output = Storage(config.output, dict(config.output_storage_options))
    meta = crisp_meta(config.model.model_dump(), datamodule.describe(), code_version(), config.task)
    collect_stale_scratch()
    scratch_dir = ScratchDir("crisp-train-")  # locked while this process lives: see pipeline.scratch
    scratch = scratch_dir.path
    try:
        ckpt_path = fetch_checkpoint(output, "last", scratch / "resume") if config.resume == "auto" else None
        if ckpt_path is not None:
            checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True)
            saved = checkpoint.get("crisp_meta", {})
            for key in ("model", "recipe", "data_manifest_hash"):
                if saved.get(key) != meta[key]:
                    raise TrainConfigError(
                        f"{output.uri('checkpoints/last.ckpt')} belongs to another run ({key}: "
                        f"{saved.get(key)!r} != {meta[key]!r}): use a new output, or resume: never to start over"
                    )
            earlier = _earlier_metrics(output, int(checkpoint.get("global_step", 0)))
        else:
            earlier = []
        # Both warnings assume a plain loader; SRDataModule's train loader has an exact per-rank length
        # and restores its position from the checkpoint itself (data/module.py).
        warnings.filterwarnings("ignore", message=".*resuming from a checkpoint that ended before the epoch")
        warnings.filterwarnings("ignore", message=".*`IterableDataset` has `__len__` defined")
        pl.seed_everything(config.seed, workers=True, verbose=False)
        sync = _MetricsLogSync(output, earlier)
        return _fit(
            config, hardware, datamodule, output, meta, scratch, ckpt_path, [sync, *(callbacks or [])]
        )
    finally:
        scratch_dir.cleanup()  # staged checkpoints and logs are on `output` by now


class _MetricsLogSync(pl.Callback):
    """With every checkpoint and at the end, `<output>/logs/metrics.csv` = the earlier rows of a resumed run
    plus this run's CSV log (rank 0): a run killed after a checkpoint keeps its curve up to it, and after a
    resume the file holds the whole run (Lightning's CSV logger starts a new file in a new process)."""

    def __init__(self, output: Storage, earlier: list[dict[str, str]]) -> None:
        self.output, self.earlier = output, earlier

    def upload(self, trainer: pl.Trainer) -> None:
        import csv
        import io

        logger = next((lg for lg in trainer.loggers if isinstance(lg, CSVLogger)), None)
        if logger is None or not trainer.is_global_zero:
            return
        logger.save()
        path = Path(logger.log_dir) / "metrics.csv"
        current = list(csv.DictReader(io.StringIO(path.read_text()))) if path.is_file() else []
        rows = [*self.earlier, *current]
        if not rows:
            return
        columns = list(dict.fromkeys(key for row in rows for key in row))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(rows)
        self.output.write_bytes("logs/metrics.csv", buffer.getvalue().encode())

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: Any, checkpoint: dict[str, Any]) -> None:
        self.upload(trainer)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: Any) -> None:
        self.upload(trainer)


def _earlier_metrics(output: Storage, resumed_step: int) -> list[dict[str, str]]:
    """The CSV rows of the run being resumed, before its checkpoint's step (that step on is re-run and re-logged)."""
    import csv
    import io

    if not output.exists("logs/metrics.csv"):
        return []
    rows = csv.DictReader(io.StringIO(output.read_bytes("logs/metrics.csv").decode()))
    return [row for row in rows if int(float(row.get("step") or 0)) < resumed_step]


def _fit(
    config: TrainConfig,
    hardware: Hardware,
    datamodule: pl.LightningDataModule,
    output: Storage,
    meta: dict[str, Any],
    scratch: Path,
    ckpt_path: Path | None,
    callbacks: list[Any],
) -> TrainResult:
    tc = config.trainer
    every = tc.checkpoint_every_n_steps or tc.val_check_interval
    last, best = checkpoint_callbacks(output, every, scratch / "staging", get_task(config.task).monitor)
    loggers: list[Any] = [CSVLogger(str(scratch), name="logs", version="")]
    if config.mlflow_tracking_uri:
        loggers.append(
            MLFlowLogger(experiment_name=config.mlflow_experiment, tracking_uri=config.mlflow_tracking_uri)
        )
    trainer = pl.Trainer(
        accelerator=hardware.accelerator,
        devices=hardware.devices,
        num_nodes=tc.num_nodes,
        strategy=hardware.strategy,
        precision=hardware.precision,
        max_steps=tc.max_steps,
        max_epochs=-1,
        val_check_interval=tc.val_check_interval,
        check_val_every_n_epoch=None,
        gradient_clip_val=tc.gradient_clip_val,
        log_every_n_steps=tc.log_every,
        num_sanity_val_steps=tc.num_sanity_val_steps,
        enable_progress_bar=tc.enable_progress_bar,
        use_distributed_sampler=False,  # the data module shards per rank itself
        callbacks=[
            last,
            best,
            *([ChannelsLast()] if tc.channels_last else []),
            *with_progress_log(callbacks, tc.progress_every_s),
        ],
        plugins=[CrispCheckpointIO(meta)],
        logger=loggers,
        default_root_dir=str(scratch),
    )
    trainer.fit(
        get_task(config.task).lit_module(config.model, config.optim),
        datamodule=datamodule,
        ckpt_path=ckpt_path,
        weights_only=True,
    )
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if torch.as_tensor(v).numel() == 1}
    result = TrainResult(
        best_ckpt_uri=output.uri(best.remote_rel) if best.best_model_score is not None else None,
        last_ckpt_uri=output.uri(last.remote_rel),
        metrics=metrics,
        global_step=trainer.global_step,
    )
    if trainer.is_global_zero:
        log_dir = Path(loggers[0].log_dir)
        for path in sorted(p for p in log_dir.rglob("*") if p.is_file() and p.name != "metrics.csv"):
            output.upload(str(path), f"logs/{path.relative_to(log_dir)}")  # metrics.csv: _MetricsLogSync
        output.write_bytes("result.json", json.dumps(asdict(result), indent=1).encode())
    return result


def main(argv: list[str] | None = None) -> int:
    """`python -m training.fit.train`: the Crisp settings (CRISP_CONFIG, CRISP_ROOT, CRISP_S3__*) fill what
    the YAML leaves out, exactly as under `crisp train`; exit 0 trained, 2 bad settings/config/data."""
    parser = argparse.ArgumentParser(prog="python -m training.fit.train", description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="training YAML (sections model, optim, data, trainer)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    # The entry point may read the Crisp settings; training's library modules never import crisp.
    from crisp.commands.train import train_config_from_settings
    from crisp.settings import ConfigError

    try:
        result = train(train_config_from_settings(args.config, args.overrides))
    except (ConfigError, TrainConfigError, DataError) as exc:
        print(f"training: {exc}", file=sys.stderr)
        return 2
    if getattr(rank_zero_only, "rank", 0) == 0:
        print(json.dumps(asdict(result)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
