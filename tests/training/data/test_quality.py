"""QualityDataModule on a real quality grid (pipeline.pairs.job.build_pairs on committed product photos):
batch shapes, one crop place and flip per group, seeded reproducibility, the same batches with loader
workers and after a mid-epoch resume, disjoint rank shares, SR's lineage keys and clear DataErrors."""

from __future__ import annotations

import io
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from pipeline.commit import read_manifest, read_verified
from pipeline.storage import Storage
from pipeline.tile_codec import decode_tile
from tests.support.quality_grid import FAMILIES, PARTITION, TRAIN_GROUPS, VAL_GROUPS
from training.data.catalog import DataError, manifest_hash
from training.data.module import SRDataModule
from training.data.quality import (
    CROP_LATTICE,
    QualityDataConfig,
    QualityDataModule,
    grid_canvas,
    load_quality_catalog,
)
from training.fit.checkpoint import crisp_meta
from training.fit.lit_quality import QualityModelConfig

MEMBERS = 1 + 5 * len(FAMILIES)  # pristine + 5 levels per family


def data_config(storage: Storage, **overrides) -> QualityDataConfig:
    values = {"root": storage.root, "crop": 64, "groups_per_batch": 2, "samples_per_group": 4, "workers": 0}
    return QualityDataConfig(**{**values, **overrides})


def attached(module: QualityDataModule, rank: int = 0, world: int = 1, epoch: int = 0) -> QualityDataModule:
    """The module as a Trainer would hold it: rank, world size and epoch from the trainer."""
    module.trainer = SimpleNamespace(global_rank=rank, world_size=world, current_epoch=epoch, training=True)
    return module


def epoch_batches(module: QualityDataModule, count_as_trained: bool = False) -> list[dict]:
    batches = []
    for batch in module.train_dataloader():
        if count_as_trained:
            module.on_after_batch_transfer(batch, 0)
        batches.append(batch)
    return batches


def same_batches(first: list[dict], second: list[dict]) -> bool:
    return len(first) == len(second) and all(
        a["key"] == b["key"] and torch.equal(a["image"], b["image"])
        for a, b in zip(first, second, strict=True)
    )


def canvases(storage: Storage) -> dict[str, np.ndarray]:
    manifest = read_manifest(storage, "pairs/quality_grid", PARTITION)
    index = pq.read_table(io.BytesIO(read_verified(storage, manifest, "index.parquet"))).to_pylist()
    path = {f.name: f"pairs/quality_grid/{PARTITION}/{f.path}" for f in manifest.files}
    return {
        r["sample_id"]: decode_tile(storage.read_range(path[r["shard"]], r["offset"], r["size"]))
        for r in index
    }


def test_batches_hold_whole_groups_of_the_configured_shape(grid_root):
    module = attached(QualityDataModule(data_config(grid_root)))
    batches = epoch_batches(module)
    assert len(batches) == len(module.train_dataloader()) == TRAIN_GROUPS // 2
    for batch in batches:
        assert batch["image"].shape == (8, 3, 64, 64) and batch["image"].dtype == torch.float32
        assert batch["image"].min() >= 0 and batch["image"].max() <= 1
        assert (
            batch["target"].dtype == torch.float32 and ((batch["target"] >= 0) & (batch["target"] <= 5)).all()
        )
        assert batch["group"].dtype == torch.int64 and batch["group"].tolist().count(batch["group"][0]) == 4
        assert len(set(batch["group"].tolist())) == 2 and len(set(batch["key"])) == 8
    groups = [g for b in batches for g in set(b["group"].tolist())]
    assert len(groups) == len(set(groups)) == TRAIN_GROUPS  # every train group once per epoch


def test_every_member_of_a_group_is_cut_at_the_same_place_and_flip(grid_root):
    full = canvases(grid_root)
    places: dict[int, set] = {}
    flips = set()
    for batch in epoch_batches(attached(QualityDataModule(data_config(grid_root)))):
        for image, key, group in zip(batch["image"], batch["key"], batch["group"].tolist(), strict=True):
            pixels = (image.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
            canvas = full[key]
            found = {
                (y, x, flip)
                for y in range(0, canvas.shape[0] - 63, CROP_LATTICE)
                for x in range(0, canvas.shape[1] - 63, CROP_LATTICE)
                for flip in (False, True)
                if np.array_equal(
                    canvas[y : y + 64, x : x + 64][:, ::-1] if flip else canvas[y : y + 64, x : x + 64],
                    pixels,
                )
            }
            assert found, f"{key} is not a lattice crop of its canvas"
            places[group] = places.get(group, found) & found
            flips |= {flip for _, _, flip in found}
    assert all(places.values()), "a group's members were cut at different places"
    assert flips == {False, True}


def test_batches_are_reproducible_from_the_seed_and_epoch(grid_root):
    first = epoch_batches(attached(QualityDataModule(data_config(grid_root))))
    again = epoch_batches(attached(QualityDataModule(data_config(grid_root))))
    next_epoch = epoch_batches(attached(QualityDataModule(data_config(grid_root)), epoch=1))
    other_seed = epoch_batches(attached(QualityDataModule(data_config(grid_root, seed=1))))
    assert same_batches(first, again)
    assert not same_batches(first, next_epoch) and not same_batches(first, other_seed)


def test_loader_workers_and_a_mid_epoch_resume_give_the_same_batches(grid_root):
    whole = epoch_batches(attached(QualityDataModule(data_config(grid_root))))
    with_workers = epoch_batches(attached(QualityDataModule(data_config(grid_root, workers=2))))
    assert same_batches(whole, with_workers)

    interrupted = attached(QualityDataModule(data_config(grid_root)))
    loader = iter(interrupted.train_dataloader())
    for _ in range(2):
        interrupted.on_after_batch_transfer(next(loader), 0)
    state = interrupted.state_dict()
    assert state["epoch"] == 0 and state["batches"] == 2 and state["samples_consumed"] == 16
    resumed = attached(QualityDataModule(data_config(grid_root)))
    resumed.load_state_dict(state)
    assert same_batches(epoch_batches(resumed), whole[2:])
    assert same_batches(epoch_batches(resumed), whole)  # the next iteration starts a whole epoch again

    other_plan = attached(QualityDataModule(data_config(grid_root, groups_per_batch=3)))
    with pytest.raises(ValueError, match="groups_per_batch: saved 2 now 3"):
        other_plan.load_state_dict(state)


def test_ranks_train_on_disjoint_groups_and_split_validation_without_padding(grid_root):
    shares = [epoch_batches(attached(QualityDataModule(data_config(grid_root)), rank, 2)) for rank in (0, 1)]
    groups = [{g for b in share for g in b["group"].tolist()} for share in shares]
    assert len(shares[0]) == len(shares[1]) == TRAIN_GROUPS // (2 * 2)
    assert not groups[0] & groups[1] and len(groups[0] | groups[1]) == TRAIN_GROUPS

    single = [b["key"][0] for b in QualityDataModule(data_config(grid_root)).val_dataloader()]
    split = [
        [b["key"][0] for b in attached(QualityDataModule(data_config(grid_root)), rank, 2).val_dataloader()]
        for rank in (0, 1)
    ]
    assert len(single) == VAL_GROUPS * MEMBERS and sorted(single) == sorted(split[0] + split[1])
    assert not set(split[0]) & set(split[1])


def test_validation_yields_whole_canvases_with_their_family(grid_root):
    module = QualityDataModule(data_config(grid_root, val_max_groups=1))
    batches = list(module.val_dataloader())
    assert len(batches) == MEMBERS
    assert {b["family"][0] for b in batches} == {"pristine", *FAMILIES}
    assert all(b["image"].shape[:2] == (1, 3) and max(b["image"].shape[2:]) == 96 for b in batches)
    assert {b["group"].item() for b in batches} == {0}
    assert [b["target"].item() for b in batches if b["family"][0] == "pristine"] == [5.0]


def test_the_grid_canvas_is_read_from_the_rows_and_must_be_one(grid_root):
    rows = load_quality_catalog(grid_root, [PARTITION]).rows
    assert grid_canvas(rows, range(rows.num_rows)) == (96, 2)  # long side and canvas version of the grid
    older = rows.set_column(rows.schema.get_field_index("grid_version"), "grid_version",
                            pa.array([1] + [2] * (rows.num_rows - 1), pa.int32()))  # fmt: skip
    assert grid_canvas(older, [0]) == (96, 1)
    with pytest.raises(DataError, match=r"canvas versions \[1, 2\]"):
        grid_canvas(older, [0, 1])


def test_describe_has_the_lineage_keys_of_sr_and_checks_pass(grid_root):
    module = QualityDataModule(data_config(grid_root), QualityModelConfig())
    lineage = module.describe()
    sr_catalog = SimpleNamespace(recipe="bicubic_x4", partitions=[], manifest_hash="", schema_version=1)
    assert set(lineage) == set(SRDataModule.describe(SimpleNamespace(catalog=sr_catalog)))
    manifest = read_manifest(grid_root, "pairs/quality_grid", PARTITION)
    assert lineage == {"recipe": "quality_grid", "pair_partitions": [PARTITION],
                       "data_manifest_hash": manifest_hash([manifest]), "schema_version": 1}  # fmt: skip
    meta = crisp_meta(QualityModelConfig().model_dump(), lineage, "test", "quality")
    assert meta["model"]["scale"] is None and meta["recipe"] == "quality_grid"
    summary = module.check(world_size=2)
    assert summary["train_groups"] == TRAIN_GROUPS and summary["batches_per_epoch"] == 3
    assert summary["val_samples"] == VAL_GROUPS * MEMBERS


def test_unusable_data_raises_one_clear_data_error(grid_root, tmp_path):
    empty = Storage(f"file://{tmp_path}/empty")
    with pytest.raises(
        DataError, match="no committed partitions under .*pairs/quality_grid: run `crisp pairs"
    ):
        QualityDataModule(data_config(empty)).check()
    with pytest.raises(DataError, match="data.partitions is empty"):
        QualityDataModule(data_config(grid_root, partitions=[])).check()
    with pytest.raises(DataError, match="not committed.*committed ones: \\['2026-11-20'\\]"):
        QualityDataModule(data_config(grid_root, partitions=["2026-11-21"])).check()
    with pytest.raises(
        DataError, match="split 'holdout' is empty in quality_grid partitions \\['2026-11-20'\\]"
    ):
        QualityDataModule(data_config(grid_root, val_split="holdout")).check()
    with pytest.raises(DataError, match="split 'test' is empty"):
        QualityDataModule(data_config(grid_root, train_split="test")).check()
    with pytest.raises(
        DataError, match="12 of 12 'train' groups .* fewer than data.groups_per_batch x ranks = 14"
    ):
        QualityDataModule(data_config(grid_root, groups_per_batch=7)).check(world_size=2)
    with pytest.raises(DataError, match="0 of 12 'train' groups have >= 4 members and canvases of >= 128 px"):
        QualityDataModule(data_config(grid_root, crop=128)).check()
    with pytest.raises(DataError, match="0 of 12 'train' groups have >= 12 members"):
        QualityDataModule(data_config(grid_root, samples_per_group=12)).check()


def test_a_trainer_fits_the_quality_module_on_it_and_saves_the_loader_position(grid_root, tmp_path):
    import lightning.pytorch as pl

    from training.fit.lit_quality import QualityModule

    torch.manual_seed(0)
    data = QualityDataModule(data_config(grid_root, val_max_groups=1), QualityModelConfig())
    data.check()
    module = QualityModule({"arch_options": {"width": 8, "depth": 3}}, {"lr": 1e-3})
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_steps=3, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, use_distributed_sampler=False,
                         num_sanity_val_steps=0, val_check_interval=3)  # fmt: skip
    trainer.fit(module, datamodule=data)
    assert trainer.callback_metrics["val/samples"] == MEMBERS and "val/srcc" in trainer.callback_metrics
    trainer.save_checkpoint(tmp_path / "q.ckpt")
    checkpoint = torch.load(tmp_path / "q.ckpt", weights_only=True)
    assert checkpoint["QualityDataModule"]["batches"] == 3 and checkpoint["ema"]["updates"] == 3
