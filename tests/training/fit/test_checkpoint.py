"""Checkpoints on any storage URI: last/best with sidecars, crisp_meta lineage, weights-only loading."""

from __future__ import annotations

import csv
import io
import json

import lightning.pytorch as pl
import pytest
import torch

from pipeline.storage import Storage
from schemas.pairs import VERSION as PAIR_INDEX_VERSION
from tests.conftest import s3_options
from tests.support.pairs_fixture import TINY_PARTITION, copy_root
from training.data.catalog import load_catalog
from training.fit.checkpoint import (
    CHECKPOINT_DIR,
    StorageCheckpoint,
    code_version,
    fetch_checkpoint,
    load_checkpoint,
)
from training.fit.train import load_train_config, train
from training.gates.safe_load import safe_load

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def s3_run(tiny_pairs, s3_endpoint):
    """Two training steps reading pairs from moto S3 and writing checkpoints there (once per module)."""
    import boto3

    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(Bucket="ckpt-tests")
    opts = s3_options(s3_endpoint)
    s3_storage = Storage("s3://ckpt-tests/crisp", opts)
    copy_root(tiny_pairs, s3_storage)
    config = load_train_config(
        None,
        [
            f"data.root={s3_storage.root}",
            "data.patch_size=16",
            "data.batch_size=4",
            "data.workers=0",
            "data.block_size=2",
            "trainer.max_steps=2",
            "trainer.val_check_interval=1",
            "trainer.checkpoint_every_n_steps=1",
            "trainer.enable_progress_bar=false",
            f"output={s3_storage.root}/runs/ckpt",
            "model.arch_options={residual: true}",
        ],
        defaults={"data": {"storage_options": opts}, "output_storage_options": opts},
    )
    return s3_storage, config, train(config)


def test_last_and_best_land_on_s3_with_lineage(s3_run):
    storage, config, result = s3_run
    run = Storage(config.output, storage.options)
    assert result.last_ckpt_uri == run.uri(f"{CHECKPOINT_DIR}/last.ckpt") and result.global_step == 2
    assert result.best_ckpt_uri == run.uri(f"{CHECKPOINT_DIR}/best.ckpt")
    last = load_checkpoint(result.last_ckpt_uri, storage.options)  # torch.load(weights_only=True) inside
    assert last["global_step"] == 2
    meta = last["crisp_meta"]
    catalog = load_catalog(storage, "bicubic_x4", "all", 4)
    assert meta["model"] == {"arch": "espcn", "scale": 4, "arch_kwargs": {"residual": True}}
    assert meta["data_manifest_hash"] == catalog.manifest_hash
    assert meta["recipe"] == "bicubic_x4" and meta["pair_partitions"] == [TINY_PARTITION]
    assert meta["schema_version"] == PAIR_INDEX_VERSION and meta["code_version"] == code_version() != ""
    assert last["hyper_parameters"]["model"]["arch"] == "espcn"
    for name, tensor in last["ema"]["weights"].items():
        assert torch.equal(last["ema_state_dict"][name], tensor)
    assert last["SRDataModule"]["batches"] == 2 and last["SRDataModule"]["epoch"] == 0
    sidecar = json.loads(run.read_bytes(f"{CHECKPOINT_DIR}/best.json"))
    best = load_checkpoint(result.best_ckpt_uri, storage.options)
    assert sidecar["monitor"] == "val/psnr_y" and sidecar["global_step"] == best["global_step"]
    logged = list(csv.DictReader(io.StringIO(run.read_bytes("logs/metrics.csv").decode())))
    scores = [float(row["val/psnr_y"]) for row in logged if row.get("val/psnr_y")]
    assert len(scores) == 2 and sidecar["score"] == pytest.approx(max(scores))
    assert json.loads(run.read_bytes("result.json"))["last_ckpt_uri"] == result.last_ckpt_uri
    # the registry/validation loader accepts it and picks the EMA weights
    module, loaded = safe_load(result.best_ckpt_uri, expected_scale=4, storage_options=storage.options)
    assert loaded.weights == "ema" and loaded.arch == "espcn"


def test_fetch_checkpoint(s3_run, tmp_path):
    storage, config, _ = s3_run
    run = Storage(config.output, storage.options)
    path = fetch_checkpoint(run, "last", tmp_path)
    assert path is not None and torch.load(path, weights_only=True)["global_step"] == 2
    assert fetch_checkpoint(run, "missing", tmp_path) is None


def test_best_score_survives_a_new_staging_folder(local_storage, tmp_path):
    first = StorageCheckpoint(
        local_storage, "best", str(tmp_path / "a"), monitor="val/psnr_y", mode="max", save_top_k=1
    )
    first.best_model_score = torch.tensor(31.5)
    first.best_k_models = {f"{first.dirpath}/best.ckpt": torch.tensor(31.5)}
    first.kth_best_model_path = f"{first.dirpath}/best.ckpt"
    first.kth_value = torch.tensor(31.5)
    second = StorageCheckpoint(
        local_storage, "best", str(tmp_path / "b"), monitor="val/psnr_y", mode="max", save_top_k=1
    )
    assert second.dirpath != first.dirpath
    second.load_state_dict(first.state_dict())
    assert float(second.best_model_score) == 31.5


def _boring_fit(tmp_path, callbacks, max_steps: int, val_every: int) -> pl.Trainer:
    from lightning.pytorch.demos.boring_classes import BoringModel

    class Scored(BoringModel):
        def validation_step(self, batch, batch_idx):
            self.log("val/psnr_y", float(self.global_step))  # later is better: best follows the latest val
            return super().validation_step(batch, batch_idx)

    trainer = pl.Trainer(
        max_steps=max_steps,
        val_check_interval=val_every,
        limit_val_batches=1,
        num_sanity_val_steps=0,
        callbacks=callbacks,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(tmp_path),
        accelerator="cpu",
    )
    trainer.fit(Scored())
    return trainer


def test_uploads_follow_lightnings_public_save_hooks(local_storage, tmp_path):
    """last: every 2 steps and at the final step 5 (not a multiple of 2); best: after each validation; a
    save made outside a callback's own hooks (another callback, trainer.save_checkpoint) uploads nothing."""
    uploads: list[tuple[str, int]] = []

    class Recording(StorageCheckpoint):
        def _publish(self, trainer):
            super()._publish(trainer)
            uploads.append((self.name, trainer.global_step))

    last, best = (
        Recording(local_storage, "last", str(tmp_path / "last"), monitor=None, every_n_train_steps=2),
        Recording(local_storage, "best", str(tmp_path / "best"), monitor="val/psnr_y", mode="max"),
    )
    trainer = _boring_fit(tmp_path, [last, best], max_steps=5, val_every=3)
    assert [step for name, step in uploads if name == "last"] == [2, 4, 5]
    assert [step for name, step in uploads if name == "best"] == [3]
    for name, step in (("last", 5), ("best", 3)):
        sidecar = json.loads(local_storage.read_bytes(f"{CHECKPOINT_DIR}/{name}.json"))
        assert sidecar["global_step"] == step and sidecar["uri"] == local_storage.uri(
            f"{CHECKPOINT_DIR}/{name}.ckpt"
        )
        stored = torch.load(
            io.BytesIO(local_storage.read_bytes(f"{CHECKPOINT_DIR}/{name}.ckpt")), weights_only=True
        )
        assert stored["global_step"] == step
    assert json.loads(local_storage.read_bytes(f"{CHECKPOINT_DIR}/best.json"))["score"] == 3.0

    count = len(uploads)
    trainer.save_checkpoint(str(tmp_path / "manual.ckpt"))  # a save outside the callbacks' hooks
    assert len(uploads) == count


def test_weights_only_checkpoints_are_refused(local_storage):
    with pytest.raises(ValueError, match="save_weights_only"):
        StorageCheckpoint(local_storage, "last", save_weights_only=True)
