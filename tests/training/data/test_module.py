"""SRDataModule: fails early on bad data or plans, serves train/val loaders, restores its loader position."""

from __future__ import annotations

import pytest
import torch

from schemas.pairs import VERSION as PAIR_INDEX_VERSION
from tests.support.pairs_fixture import TINY_PARTITION
from training.data.catalog import DataError
from training.data.module import DataConfig, SRDataModule


def _config(storage, **overrides) -> DataConfig:
    base = {"root": storage.root, "patch_size": 16, "batch_size": 4, "workers": 0, "block_size": 2, "seed": 1}
    return DataConfig(**{**base, **overrides})


def test_check_summarises_the_data_and_lineage(tiny_pairs):
    summary = SRDataModule(_config(tiny_pairs), scale=4).check(world_size=2)
    assert summary["train_pairs"] > 0 and summary["val_pairs"] > 0
    assert summary["recipe"] == "bicubic_x4" and summary["pair_partitions"] == [TINY_PARTITION]
    assert len(summary["data_manifest_hash"]) == 64 and summary["schema_version"] == PAIR_INDEX_VERSION


@pytest.mark.parametrize(
    "overrides,scale,message",
    [
        ({}, 2, "makes x4 pairs but the model is x2"),
        ({"recipe": "bicubic_x2"}, 2, "no committed partitions under .*bicubic_x2"),
        ({"partitions": ["2030-01-01"]}, 4, "pairs/bicubic_x4/2030-01-01 is not committed"),
        ({"patch_size": 64}, 4, "no 'train' pairs with LR tiles of at least 64px"),
        ({"batch_size": 64}, 4, "cannot fill one batch"),
        ({"val_split": "holdout"}, 4, "no validation data"),
        ({"benchmarks": {"Set5": "/nonexistent"}}, 4, "benchmark 'Set5': no HR images"),
        ({"max_label_psnr_y": 1.0}, 4, "pairs score above data.max_label_psnr_y=1.0 dB"),
    ],
)
def test_bad_configurations_fail_before_training(tiny_pairs, overrides, scale, message):
    with pytest.raises(DataError, match=message):
        SRDataModule(_config(tiny_pairs, **overrides), scale=scale).check()


def test_label_ceiling_drops_only_near_lossless_train_pairs(tiny_pairs):
    module = SRDataModule(_config(tiny_pairs), scale=4)
    train = module.catalog.split("train")
    ceiling = sorted(train["psnr_y"].to_pylist())[train.num_rows // 2]
    summary = SRDataModule(_config(tiny_pairs, max_label_psnr_y=ceiling), scale=4).check()
    expected = sum(p <= ceiling for p in train["psnr_y"].to_pylist())
    assert summary["train_pairs"] == expected < module.check()["train_pairs"]
    assert summary["val_pairs"] == module.check()["val_pairs"]  # validation is never filtered


def test_too_many_ranks_for_the_data(tiny_pairs):
    with pytest.raises(DataError, match="8 ranks x 1 loader workers"):
        SRDataModule(_config(tiny_pairs), scale=4).check(world_size=8)


def test_loaders(tiny_pairs, shared_data):
    set5 = str(shared_data / "sr_benchmarks" / "Set5")
    module = SRDataModule(_config(tiny_pairs, benchmarks={"Set5": set5}, val_max_pairs=3), scale=4)
    module.setup("fit")
    batch = next(iter(module.train_dataloader()))
    assert (
        batch["lr"].shape == (4, 3, 16, 16) and batch["hr"].shape == (4, 3, 64, 64) and len(batch["key"]) == 4
    )
    assert batch["lr"].dtype == torch.uint8  # a quarter of the bytes through the workers' shared memory
    ready = module.on_after_batch_transfer(batch, 0)  # what the trainer hands training_step
    assert ready["hr"].dtype == torch.float32 and ready["key"] == batch["key"]
    assert torch.equal(ready["hr"], batch["hr"].float() / 255) and float(ready["hr"].max()) <= 1.0
    loaders = module.val_dataloader()
    assert list(loaders) == ["val", "Set5"]
    assert len(loaders["val"].dataset) == 3 and len(loaders["Set5"].dataset) == 5
    item = next(iter(loaders["Set5"]))
    assert item["hr"].shape[2] == 4 * item["lr"].shape[2]


def test_state_restores_the_loader_position(tiny_pairs):
    module = SRDataModule(_config(tiny_pairs), scale=4)
    module.setup("fit")
    assert module.state_dict()["batches"] == 0
    plan = module.train_set.plan
    module.load_state_dict({**module.state_dict(), "epoch": 2, "batches": 3})
    keys = [list(b["key"]) for b in module.train_dataloader()]
    expected = [[module.train_set.reader.keys[i] for i in batch] for batch in plan.rank_batches(2, 0)]
    assert keys == expected[3:]
    assert module.position.epoch == 2
    other = SRDataModule(_config(tiny_pairs, batch_size=2), scale=4)
    other.setup("fit")
    with pytest.raises(ValueError, match="batch_size: saved 4 now 2"):
        other.load_state_dict(module.state_dict())


def _scored_images(storage, scores: dict[str, float | None]) -> None:
    """Commit images/<TINY_PARTITION> whose index holds just the learned scores of the pairs' sources."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipeline.commit import PartitionWriter

    writer = PartitionWriter(storage, "images", TINY_PARTITION, run_id="test")
    table = pa.table(
        {"image_id": list(scores), "quality_learned": pa.array(list(scores.values()), pa.float64())}
    )
    buf = io.BytesIO()
    pq.write_table(table, buf)
    writer.write("index.parquet", buf.getvalue())
    writer.commit(counts={"images": len(scores)}, schema_versions={"image_index": 3})


def test_min_quality_keeps_the_pairs_of_well_scored_photos(tiny_pairs, tmp_path):
    from pipeline.storage import Storage
    from tests.support.pairs_fixture import copy_root

    root = Storage(f"file://{tmp_path}/root")
    copy_root(tiny_pairs, root)
    everything = SRDataModule(_config(root), scale=4)
    train = everything._train_rows()
    images = sorted(set(train["image_id"].to_pylist()))
    with pytest.raises(DataError, match="min_quality needs the source images"):
        SRDataModule(_config(root, min_quality=3.0), scale=4).check()
    # half the photos score high, one low, the rest were never scored
    scores = {image: 4.0 for image in images[: len(images) // 2]}
    scores[images[-1]] = 1.0
    _scored_images(root, {**scores, images[-2]: None})
    kept = SRDataModule(_config(root, min_quality=3.0), scale=4)._train_rows()
    assert set(kept["image_id"].to_pylist()) == set(images[: len(images) // 2])
    per_image = {i: train["image_id"].to_pylist().count(i) for i in images[: len(images) // 2]}
    assert kept.num_rows == sum(per_image.values())  # every pair of a kept photo, no other
    with pytest.raises(DataError, match="data.min_quality=4.5"):
        SRDataModule(_config(root, min_quality=4.5), scale=4).check()


def test_min_quality_needs_scores(tiny_pairs, tmp_path):
    from pipeline.storage import Storage
    from tests.support.pairs_fixture import copy_root

    root = Storage(f"file://{tmp_path}/root")
    copy_root(tiny_pairs, root)
    train = SRDataModule(_config(root), scale=4)._train_rows()
    _scored_images(root, dict.fromkeys(train["image_id"].to_pylist()))
    with pytest.raises(DataError, match="holds no learned quality scores"):
        SRDataModule(_config(root, min_quality=1.0), scale=4).check()


def test_persistent_workers_follow_each_epoch_and_a_resume(tiny_pairs):
    """Two loader workers are started once; each later `iter()` (a new epoch, then a restored position)
    serves exactly the plan's batches for that epoch and start, as a fresh single-process loader does."""
    module = SRDataModule(_config(tiny_pairs, workers=2, block_size=1), scale=4)
    module.setup("fit")
    plan, keys = module.train_set.plan, module.train_set.reader.keys
    loader = module.train_dataloader()
    assert loader.persistent_workers
    from training.data.sampler import LoaderPosition

    seen = {}
    for epoch in (0, 1):
        module.position = LoaderPosition(epoch=epoch)
        seen[epoch] = sorted(k for batch in loader for k in batch["key"])
        workers = loader._iterator._workers  # noqa: SLF001 (the same processes serve every epoch)
        if epoch == 0:
            first_workers = [w.pid for w in workers]
        assert [w.pid for w in workers] == first_workers
    expected = {e: sorted(keys[i] for b in plan.rank_batches(e, 0) for i in b) for e in (0, 1)}
    assert (
        seen == expected
        and seen[0] != []
        and plan.rank_batches(0, 0).tolist() != plan.rank_batches(1, 0).tolist()
    )
    module.load_state_dict({**module.state_dict(), "epoch": 3, "batches": 1})
    resumed = sorted(k for batch in loader for k in batch["key"])
    assert resumed == sorted(keys[i] for b in plan.rank_batches(3, 0)[1:] for i in b)
