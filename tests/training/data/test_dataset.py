"""Pair datasets: aligned augmentation, ranged block reads, rank/worker streams that follow the plan."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from pipeline.degrade.bicubic import bicubic_downscale
from pipeline.shards import iter_tar
from pipeline.tile_codec import decode_tile
from tests.support.pairs_fixture import HR_MEMBER, copy_root
from training.archs.levels import UNKNOWN
from training.data.catalog import load_catalog
from training.data.dataset import (
    BenchmarkImages,
    PairReader,
    TrainPairStream,
    WholeTiles,
    augment,
    benchmark_images,
)
from training.data.sampler import EpochPlan, block_bounds

SCALE, PATCH = 4, 16


def _train(storage):
    rows = load_catalog(storage, "bicubic_x4", "all", SCALE).split("train")
    return rows.sort_by([("shard_path", "ascending"), ("hr_offset", "ascending")])


def _stream(storage, world=1, rank=0, workers=2, block_size=2, batch=4):
    rows = _train(storage)
    plan = EpochPlan(block_bounds(rows["shard_path"].to_numpy(zero_copy_only=False), block_size), world,
                     max(workers, 1), batch, seed=7, window=3)  # fmt: skip
    return TrainPairStream(
        PairReader(rows, storage.root, storage.options), plan, rank, SCALE, PATCH, read_threads=4
    )


def _keys(stream, workers, epoch=0, start=0):
    stream.epoch, stream.start_batch = epoch, start
    loader = DataLoader(stream, batch_size=stream.plan.batch_size, num_workers=workers)
    return [list(batch["key"]) for batch in loader]


def _plan_keys(stream, epoch=0):
    return [[stream.reader.keys[i] for i in batch] for batch in stream.plan.rank_batches(epoch, stream.rank)]


def test_augment_keeps_lr_and_hr_aligned_under_all_eight_symmetries():
    lr = np.random.default_rng(0).integers(0, 256, size=(20, 30, 3), dtype=np.uint8)
    hr = np.kron(lr, np.ones((SCALE, SCALE, 1), dtype=np.uint8))  # every LR pixel is an s x s HR block
    seen = set()
    for seed in range(64):
        lr_p, hr_p = augment(lr, hr, SCALE, 8, np.random.default_rng(seed))
        assert lr_p.shape == (8, 8, 3) and hr_p.shape == (32, 32, 3)
        assert np.array_equal(hr_p[::SCALE, ::SCALE], lr_p)
        seen.add(hr_p.tobytes())
        again = augment(lr, hr, SCALE, 8, np.random.default_rng(seed))
        assert np.array_equal(again[1], hr_p)
    assert len(seen) > 40
    with pytest.raises(ValueError, match="smaller than the 24px training patch"):
        augment(lr, hr, SCALE, 24, np.random.default_rng(0))


def test_ranged_reads_return_the_shard_members(tiny_pairs):
    rows = _train(tiny_pairs)
    reader = PairReader(rows, tiny_pairs.root, {})
    members = {}
    for path in set(rows["shard_path"].to_pylist()):
        members.update(dict(iter_tar(tiny_pairs.read_bytes(path))))
    bounds = block_bounds(rows["shard_path"].to_numpy(zero_copy_only=False), 3)
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        block = reader.fetch_block(lo, hi)
        for i in range(lo, hi):
            lr, hr = reader.decode(i, block)
            sample = members[reader.keys[i]]
            assert np.array_equal(lr, decode_tile(sample["lr.png"]))
            assert np.array_equal(hr, decode_tile(sample[HR_MEMBER]))
            assert np.array_equal(reader.read(i)[1], hr)
            assert hr.shape[0] == SCALE * lr.shape[0] and hr.shape[1] == SCALE * lr.shape[1]
    with pytest.raises(ValueError, match="span [0-9]+ shards"):
        reader.fetch_block(0, len(reader))


def test_workers_follow_the_plan_and_reshuffle_per_epoch(tiny_pairs):
    stream = _stream(tiny_pairs, workers=2)
    epoch0 = _keys(stream, workers=2)
    assert epoch0 == _plan_keys(stream) and len(epoch0) == stream.plan.batches_per_rank
    assert len({k for b in epoch0 for k in b}) == stream.plan.samples_per_rank  # no repeats
    epoch1 = _keys(stream, workers=2, epoch=1)
    assert epoch1 == _plan_keys(stream, epoch=1) and epoch1 != epoch0
    # resuming at any batch continues the same sequence (DataLoader asks worker 0 first)
    for start in (1, 3):
        assert _keys(stream, workers=2, start=start) == epoch0[start:]


def test_ranks_get_disjoint_equal_shares(tiny_pairs):
    keys = [
        [k for b in _keys(_stream(tiny_pairs, world=2, rank=r, workers=1), 0) for k in b] for r in range(2)
    ]
    assert len(keys[0]) == len(keys[1]) > 0
    assert not set(keys[0]) & set(keys[1])


def test_samples_do_not_depend_on_the_worker_count(tiny_pairs):
    one, two = _stream(tiny_pairs, workers=0), _stream(tiny_pairs, workers=2)
    a = {s["key"]: s for s in (one.augmented(i, one.reader.fetch_block(i, i + 1), 3) for i in range(4))}
    b = {s["key"]: s for s in (two.augmented(i, two.reader.fetch_block(i, i + 1), 3) for i in range(4))}
    for key, sample in a.items():
        assert torch.equal(sample["lr"], b[key]["lr"]) and torch.equal(sample["hr"], b[key]["hr"])
        assert sample["lr"].shape == (3, PATCH, PATCH) and sample["hr"].shape == (
            3,
            PATCH * SCALE,
            PATCH * SCALE,
        )
        assert sample["hr"].dtype == sample["lr"].dtype == torch.uint8  # as_float after the transfer


def test_levels_ride_along_seeded_and_leave_the_crops_as_they_were(tiny_pairs):
    plain = _stream(tiny_pairs, workers=0)
    count = len(plain.reader)
    levels = np.linspace(0, 1, count * 2, dtype=np.float32).reshape(count, 2)

    def conditioned(dropout):
        stream = _stream(tiny_pairs, workers=0)
        stream.levels, stream.level_dropout = levels, dropout
        return [stream.augmented(i, stream.reader.fetch_block(i, i + 1), 1) for i in range(count)]

    told, half, again = conditioned(0.0), conditioned(0.5), conditioned(0.5)
    for i, sample in enumerate(plain.augmented(i, plain.reader.fetch_block(i, i + 1), 1) for i in range(count)):
        assert "level" not in sample and torch.equal(sample["lr"], told[i]["lr"])
        assert told[i]["level"].dtype == torch.float32
        np.testing.assert_array_equal(told[i]["level"].numpy(), levels[i])
        torch.testing.assert_close(half[i]["level"], again[i]["level"])  # a pure function of the index
    hidden = torch.stack([s["level"] for s in half]) == UNKNOWN
    assert 0 < int(hidden.sum()) < hidden.numel()
    shown = ~hidden
    np.testing.assert_array_equal(torch.stack([s["level"] for s in half])[shown].numpy(), levels[shown.numpy()])


def test_streams_from_moto_s3_match_local(tiny_pairs, s3_storage):
    copy_root(tiny_pairs, s3_storage)
    assert _keys(_stream(s3_storage, workers=2), workers=2) == _keys(
        _stream(tiny_pairs, workers=2), workers=2
    )


def test_validation_tiles_split_over_ranks_without_padding(tiny_pairs):
    rows = load_catalog(tiny_pairs, "bicubic_x4", "all", SCALE).split("val")
    reader = PairReader(rows, tiny_pairs.root, {})
    shares = [WholeTiles(reader, rank, 3) for rank in range(3)]
    keys = [shares[r][i]["key"] for r in range(3) for i in range(len(shares[r]))]
    assert sorted(keys) == sorted(reader.keys) and len(keys) == len(set(keys))
    item = shares[0][0]
    assert item["hr"].shape[1:] == (item["lr"].shape[1] * SCALE, item["lr"].shape[2] * SCALE)


def test_benchmark_images_follow_the_protocol(shared_data):
    images = benchmark_images(shared_data / "sr_benchmarks" / "Set14", SCALE)
    assert len(images) == 14
    for name, lr, hr in images:
        assert hr.shape[0] % SCALE == 0 and hr.shape[1] % SCALE == 0 and hr.shape[2] == 3
        assert np.array_equal(lr, bicubic_downscale(hr, SCALE)), name
    assert [len(BenchmarkImages(images, r, 4)) for r in range(4)] == [4, 4, 3, 3]
    with pytest.raises(ValueError, match="no HR images"):
        benchmark_images(shared_data / "sr_benchmarks" / "missing", SCALE)
