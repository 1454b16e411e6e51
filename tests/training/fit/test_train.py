"""train(): configs and overrides, hardware checks, mid-epoch kill + resume == uninterrupted, NaN stop,
and (slow) DDP on CPU from moto S3 whose logged metrics equal a single-process evaluation."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from lightning.pytorch.callbacks import Callback

from pipeline.sr_metrics import psnr_y, ssim_y
from pipeline.storage import Storage
from tests.conftest import REPO, s3_options
from tests.support.pairs_fixture import TINY_PARTITION, copy_root
from tests.support.train_callbacks import Killed, Recorder
from training.data.module import DataConfig, SRDataModule
from training.fit.checkpoint import load_checkpoint
from training.fit.lit_module import NonFiniteLossError, ema_arch_from_checkpoint, to_uint8_hwc
from training.fit.train import (
    TrainConfigError,
    TrainerConfig,
    load_train_config,
    main,
    resolve_hardware,
    train,
)
from training.gates.evaluate import evaluate_folder

torch.set_num_threads(1)
TINY = ["data.patch_size=16", "data.batch_size=4", "data.block_size=2", "data.shuffle_window=2",
        "trainer.enable_progress_bar=false", "trainer.log_every=1", "resume=auto"]  # fmt: skip


def _config(tiny_pairs, output: Path, *extra: str):
    return load_train_config(None, [f"data.root={tiny_pairs.root}", f"output=file://{output}", *TINY, *extra])


def test_config_file_overrides_and_errors(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"model": {"arch": "safmn"}, "trainer": {"max_steps": 7}}))
    config = load_train_config(path, ["trainer.devices=2", "data.partitions=[2026-01-01]", "optim.lr=1e-3"])
    assert config.model.arch == "safmn" and config.trainer.max_steps == 7 and config.trainer.devices == 2
    assert config.data.partitions == ["2026-01-01"] and config.optim.lr == 1e-3
    for shipped in sorted((REPO / "training" / "configs").glob("*_x4.yaml")):
        assert load_train_config(shipped).model.scale == 4, shipped
    with pytest.raises(TrainConfigError, match="unknown arch 'espcnn'"):
        load_train_config(None, ["model.arch=espcnn"])
    with pytest.raises(TrainConfigError, match="trainer.max_step: Extra inputs are not permitted"):
        load_train_config(None, ["trainer.max_step=3"])
    with pytest.raises(TrainConfigError, match="warmup_steps=100 must be below the 50 training steps"):
        load_train_config(None, ["optim.warmup_steps=100", "trainer.max_steps=50"])
    with pytest.raises(TrainConfigError, match="must look like section.key=value"):
        load_train_config(None, ["trainer.max_steps"])
    with pytest.raises(TrainConfigError, match="does not exist"):
        load_train_config(tmp_path / "missing.yaml")


def test_hardware_that_does_not_exist_is_refused():
    with pytest.raises(TrainConfigError, match="devices=4 but no GPU is visible and this machine has 2 CPU"):
        resolve_hardware(TrainerConfig(devices=4), cuda_devices=0, cpu_cores=2)
    with pytest.raises(TrainConfigError, match="accelerator=gpu but no CUDA GPU is visible"):
        resolve_hardware(TrainerConfig(accelerator="gpu"), cuda_devices=0, cpu_cores=2)
    with pytest.raises(TrainConfigError, match="devices=3 but only 2 GPU"):
        resolve_hardware(TrainerConfig(accelerator="cuda", devices=3), cuda_devices=2, cpu_cores=2)
    cpu = resolve_hardware(TrainerConfig(devices=2), cuda_devices=0, cpu_cores=2)
    assert (cpu.accelerator, cpu.devices, cpu.strategy, cpu.precision) == ("cpu", 2, "ddp", "32-true")
    one = resolve_hardware(TrainerConfig(), cuda_devices=0, cpu_cores=2)
    assert (one.strategy, one.devices) == ("auto", 1)
    assert resolve_hardware(TrainerConfig(num_nodes=2), cuda_devices=0, cpu_cores=2).strategy == "ddp"


def test_main_reports_bad_input_with_exit_code_2(capsys):
    assert main(["--set", "data.recipe=bicubic_x2", "--set", "data.root=file:///nonexistent"]) == 2
    assert "recipe 'bicubic_x2' makes x2 pairs but the model is x4" in capsys.readouterr().err


@pytest.mark.slow
def test_module_entry_point_reads_the_crisp_settings(tiny_pairs, s3_storage, s3_endpoint, tmp_path):
    """`python -m training.fit.train` with only CRISP_ROOT=s3://... and CRISP_S3__ENDPOINT_URL: the settings
    supply data.root, output and the S3 options that the YAML leaves out, as under `crisp train`."""
    copy_root(tiny_pairs, s3_storage)
    work = tmp_path / "work"  # the cwd: a file://./data root would land here
    work.mkdir()
    env = {
        "CRISP_ROOT": s3_storage.root,
        "CRISP_S3__ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path / "home"),
        "PYTHONPATH": str(REPO),
        "OMP_NUM_THREADS": "1",
    }
    tiny = ["optim.warmup_steps=0", "data.patch_size=16", "data.batch_size=4", "data.block_size=2",
            "data.workers=0", "trainer.val_check_interval=2", "trainer.enable_progress_bar=false",
            f"data.partitions=[{TINY_PARTITION}]", "trainer.max_steps=2"]  # fmt: skip
    command = [
        sys.executable,
        "-m",
        "training.fit.train",
        "--config",
        str(REPO / "training/configs/espcn_x4.yaml"),
    ]
    command += [arg for item in tiny for arg in ("--set", item)]
    done = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    run = f"{s3_storage.root}/runs/sr_train"
    assert result["global_step"] == 2 and result["last_ckpt_uri"] == f"{run}/checkpoints/last.ckpt"
    checkpoint = torch.load(
        io.BytesIO(s3_storage.read_bytes("runs/sr_train/checkpoints/last.ckpt")),
        map_location="cpu",
        weights_only=True,
    )
    assert checkpoint["crisp_meta"]["pair_partitions"] == [TINY_PARTITION]
    assert "bicubic_x4" in str(checkpoint["crisp_meta"]["recipe"])
    assert s3_storage.exists("runs/sr_train/result.json") and list(work.iterdir()) == []  # nothing local


def test_killed_mid_epoch_and_resumed_equals_uninterrupted(tiny_pairs, tmp_path):
    """Loader workers 2: the resume point is an odd batch, so the workers' roles rotate."""
    run = [
        "data.workers=2",
        "trainer.max_steps=9",
        "trainer.val_check_interval=3",
        "trainer.checkpoint_every_n_steps=5",
    ]
    whole = Recorder()
    result = train(_config(tiny_pairs, tmp_path / "whole", *run), callbacks=[whole])
    assert result.global_step == 9 and sorted(whole.steps) == list(range(9))

    killed = Recorder(kill_at=7)
    with pytest.raises(Killed):
        train(_config(tiny_pairs, tmp_path / "killed", *run), callbacks=[killed])
    saved = load_checkpoint(f"file://{tmp_path}/killed/checkpoints/last.ckpt")
    loader = saved["SRDataModule"]
    assert saved["global_step"] == 5 and loader["epoch"] >= 1  # saved after an epoch boundary...
    assert 0 < loader["batches"] < 5 and loader["samples_consumed"] == loader["batches"] * 4  # ...mid-epoch
    resumed = Recorder()
    again = train(_config(tiny_pairs, tmp_path / "killed", *run), callbacks=[resumed])
    assert again.global_step == 9 and sorted(resumed.steps) == [5, 6, 7, 8]

    seen = {**{s: k for s, k in killed.steps.items() if s < 5}, **resumed.steps}
    assert seen == whole.steps  # same samples, same order, same step count

    # the metrics log of the resumed run holds the whole run, row for row as the uninterrupted one
    def metrics_log(name):
        return list(csv.DictReader((tmp_path / name / "logs" / "metrics.csv").read_text().splitlines()))

    steps = [int(row["step"]) for row in metrics_log("whole") if row["train/loss"]]
    assert steps == list(range(9)) and metrics_log("killed") == metrics_log("whole")
    epochs_per_run = {
        load_checkpoint(f"file://{tmp_path}/{name}/checkpoints/last.ckpt")["epoch"]
        for name in ("whole", "killed")
    }
    assert len(epochs_per_run) == 1 and epochs_per_run.pop() >= 1, "the run crosses an epoch boundary"
    a = load_checkpoint(f"file://{tmp_path}/whole/checkpoints/last.ckpt")
    b = load_checkpoint(f"file://{tmp_path}/killed/checkpoints/last.ckpt")
    assert a["SRDataModule"] == b["SRDataModule"]
    for section in ("state_dict", "ema_state_dict"):
        for name, tensor in a[section].items():
            assert torch.equal(tensor, b[section][name]), (section, name)

    with pytest.raises(TrainConfigError, match="belongs to another run \\(model"):
        train(_config(tiny_pairs, tmp_path / "whole", *run, "model.arch_options={residual: true}"))


class PoisonWeights(Callback):
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == 2:
            with torch.no_grad():
                next(pl_module.net.parameters()).fill_(float("nan"))


def test_nan_loss_stops_without_a_nan_checkpoint(tiny_pairs, tmp_path):
    config = _config(tiny_pairs, tmp_path / "nan", "data.workers=0", "trainer.max_steps=6",
                     "trainer.val_check_interval=4", "trainer.checkpoint_every_n_steps=4")  # fmt: skip
    with pytest.raises(NonFiniteLossError, match="non-finite training loss .* at global step 2"):
        train(config, callbacks=[PoisonWeights()])
    assert not (tmp_path / "nan" / "checkpoints" / "last.ckpt").exists()


def _single_process_metrics(checkpoint: dict, data: DataConfig) -> dict[str, float]:
    """Score the checkpoint's EMA weights on the same val tiles and Set5 in one process, laid out
    channels-last as the run validated them (trainer.channels_last: the same convolution kernels)."""
    net = ema_arch_from_checkpoint(checkpoint).to(memory_format=torch.channels_last)
    module = SRDataModule(data, scale=4)
    module.setup("validate")
    tiles = module.val_sets["val"]
    psnrs, ssims = [], []
    with torch.inference_mode():
        for i in range(len(tiles)):
            item = tiles[i]
            sr, hr = to_uint8_hwc(net(item["lr"][None]))[0], to_uint8_hwc(item["hr"][None])[0]
            psnrs.append(psnr_y(sr, hr, 4))
            ssims.append(ssim_y(sr, hr, 4))
    set5 = evaluate_folder(net, Path(data.benchmarks["Set5"]), 4)
    return {"val/psnr_y": float(np.mean(psnrs)), "val/ssim_y": float(np.mean(ssims)),
            "val/Set5/psnr_y": set5.mean_psnr_y, "val/Set5/ssim_y": set5.mean_ssim_y}  # fmt: skip


@pytest.mark.slow
def test_ddp_on_cpu_from_s3_matches_single_process_evaluation(
    tiny_pairs, s3_storage, s3_endpoint, shared_data, tmp_path
):
    copy_root(tiny_pairs, s3_storage)
    opts = s3_options(s3_endpoint)
    output = f"{s3_storage.root}/runs/ddp"
    config = {
        "model": {"arch": "espcn", "scale": 4, "arch_options": {"residual": True}},
        "optim": {"lr": 1e-3},
        "data": {"root": s3_storage.root, "storage_options": opts, "patch_size": 16, "batch_size": 4, "workers": 1,
                 "block_size": 2, "shuffle_window": 2, "benchmarks": {"Set5": str(shared_data / "sr_benchmarks" / "Set5")}},
        "trainer": {"max_steps": 4, "devices": 2, "accelerator": "cpu", "strategy": "ddp", "val_check_interval": 2,
                    "enable_progress_bar": False, "log_every": 1},
        "output": output,
        "output_storage_options": opts,
    }  # fmt: skip
    path = tmp_path / "ddp.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "training.fit.train", "--config", str(path)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=540)  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["global_step"] == 4 and result["best_ckpt_uri"] == f"{output}/checkpoints/best.ckpt"

    run = Storage(output, opts)
    logged = list(csv.DictReader(io.StringIO(run.read_bytes("logs/metrics.csv").decode())))
    validations = {int(row["step"]): row for row in logged if row.get("val/psnr_y")}
    assert len(validations) == 2, logged
    best = load_checkpoint(result["best_ckpt_uri"], opts)
    assert best["crisp_meta"]["model"]["arch"] == "espcn"
    row = validations[best["global_step"] - 1]  # Lightning logs validation at the step before the increment
    assert float(row["val/images"]) == len(SRDataModule(config["data"], 4).catalog.split("val"))
    expected = _single_process_metrics(best, DataConfig(**config["data"]))
    for name, value in expected.items():
        # Lightning logs float32: equal up to the float32 rounding of the mean (one ulp when the float64
        # means of the two summation orders straddle a float32 rounding boundary).
        assert abs(np.float32(row[name]) - np.float32(value)) <= np.spacing(np.float32(value)), (
            name,
            row[name],
            value,
        )
