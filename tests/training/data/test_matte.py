"""The matte loader on real composites: batches are the stored members cut alike, a pure function of
(seed, epoch, batch), disjoint across DDP ranks; validation is whole canvases; bad data is refused early."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.support.matte_composites import PARTITION, SIDE
from training.data.catalog import DataError
from training.data.matte import MatteDataConfig, MatteDataModule


def _module(storage, world=1, rank=0, **extra):
    fields = {"root": storage.root, "partitions": [PARTITION], "crop": 32, "batch_size": 4, "workers": 0, **extra}
    config = MatteDataConfig(**fields)
    module = MatteDataModule(config)
    module.rank_world = lambda: (rank, world)  # what a Trainer with `world` devices would report
    module.setup("fit")
    return module


def test_a_batch_is_four_members_cut_alike_and_consistent(matte_root):
    module = _module(matte_root)
    batch = module.train_set[(0, 0)]
    assert batch["image"].shape == (4, 3, 32, 32) and batch["alpha"].shape == (4, 1, 32, 32)
    assert len(set(batch["key"])) == 4
    a = batch["alpha"]
    recomposed = a * batch["fg"] + (1 - a) * batch["bg"]
    assert torch.abs(recomposed - batch["image"]).max() <= 1.0 / 255 + 1e-6  # the stored composite
    again = module.train_set[(0, 0)]
    assert all(torch.equal(batch[k], again[k]) for k in ("image", "alpha", "fg", "bg"))
    assert batch["key"] != module.train_set[(1, 0)]["key"]  # another epoch, another order


def test_ranks_take_disjoint_samples(matte_root):
    seen = []
    for rank in range(2):
        module = _module(matte_root, world=2, rank=rank)
        seen.append({k for i in range(len(module.train_set)) for k in module.train_set[(0, i)]["key"]})
    assert seen[0] and seen[1] and not seen[0] & seen[1]


def test_validation_is_whole_canvases_with_their_background(matte_root):
    module = _module(matte_root)
    sample = module.val_set[0]
    assert sample["image"].shape == (3, SIDE, SIDE) and sample["alpha"].shape == (1, SIDE, SIDE)
    assert sample["background"] in {"scene", "texture", "gradient", "noise", "solid"}
    assert module.describe()["recipe"] == "matte_composites" and len(module.describe()["data_manifest_hash"]) == 64


def test_too_few_samples_or_a_missing_partition_are_refused(matte_root):
    with pytest.raises(DataError, match="fewer than data.batch_size"):
        _module(matte_root, batch_size=10_000)
    config = MatteDataConfig(root=matte_root.root, partitions=["2030-01-01"], workers=0)
    with pytest.raises(DataError, match="2030-01-01"):
        MatteDataModule(config).catalog
    assert np.isfinite(_module(matte_root).check()["batches_per_epoch"])
