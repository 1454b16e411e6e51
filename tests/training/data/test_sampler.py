"""EpochPlan: disjoint equal shares per rank and worker, reshuffled per epoch, resumable batch for batch."""

from __future__ import annotations

import numpy as np
import pytest

from training.data.sampler import EpochPlan, LoaderPosition, block_bounds, check_resumable

# 4 shards of uneven size: blocks never span two of them
SHARDS = np.repeat([0, 1, 2, 3], [130, 97, 160, 113])


def _plan(world=1, workers=1, batch=5, block=4, seed=3, window=3) -> EpochPlan:
    return EpochPlan(block_bounds(SHARDS, block), world, workers, batch, seed, window)


def _loader_order(plan: EpochPlan, epoch: int, rank: int, start: int = 0) -> list[np.ndarray]:
    """Batches in the order a DataLoader collects them: round robin over workers, skipping exhausted ones."""
    queues = []
    for worker in range(plan.workers):
        role, first = plan.worker_role(worker, start)
        batches = plan.slot_samples(epoch, rank * plan.workers + role).reshape(-1, plan.batch_size)
        queues.append(list(batches[first:]))
    order, worker = [], 0
    while any(queues):
        if queues[worker]:
            order.append(queues[worker].pop(0))
        worker = (worker + 1) % plan.workers
    return order


def test_blocks_hold_consecutive_samples_of_one_shard():
    bounds = block_bounds(SHARDS, 32)
    sizes = np.diff(bounds)
    assert bounds[0] == 0 and bounds[-1] == len(SHARDS) and sizes.max() == 32
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        assert len(set(SHARDS[lo:hi])) == 1
    assert block_bounds(SHARDS, 1) == tuple(range(len(SHARDS) + 1))
    with pytest.raises(ValueError, match="block_size must be >= 1"):
        block_bounds(SHARDS, 0)


@pytest.mark.parametrize("world,workers,block", [(1, 1, 1), (2, 1, 4), (2, 3, 4), (3, 2, 7)])
def test_shares_are_disjoint_and_equal(world, workers, block):
    plan = _plan(world, workers, block=block)
    seen: list[int] = []
    for slot in range(plan.slots):
        samples = plan.slot_samples(0, slot)
        assert len(samples) == plan.batches_per_slot * plan.batch_size > 0
        seen.extend(samples.tolist())
    assert len(seen) == len(set(seen)) == world * plan.samples_per_rank
    for rank in range(world):
        assert plan.rank_batches(0, rank).shape == (plan.batches_per_rank, plan.batch_size)
    # the epoch keeps all but fewer than batch_size samples per slot (whole-block dealing left up to a
    # block per slot more)
    assert len(SHARDS) - len(seen) < plan.slots * plan.batch_size + plan.slots
    # a block is read by one slot, or by two neighbours when the cut between them falls inside it
    owners: dict[int, set[int]] = {}
    for slot in range(plan.slots):
        for window in plan.slot_windows(0, slot):
            for b in window.blocks.tolist():
                owners.setdefault(b, set()).add(slot)
    assert all(len(s) == 1 or (len(s) == 2 and max(s) - min(s) == 1) for s in owners.values())
    assert sum(len(s) == 2 for s in owners.values()) <= plan.slots - 1


def test_reshuffles_per_epoch_deterministically():
    plan = _plan(world=2, workers=2)
    e0, e1 = plan.rank_batches(0, 1), plan.rank_batches(1, 1)
    assert not np.array_equal(e0, e1)
    assert np.array_equal(e0, _plan(world=2, workers=2).rank_batches(0, 1))
    assert not np.array_equal(e0, _plan(world=2, workers=2, seed=4).rank_batches(0, 1))
    assert plan.batches_per_rank == _plan(world=2, workers=2).batches_per_rank  # epoch length is fixed
    covered = set()
    for epoch in range(4):
        for rank in range(2):
            covered |= set(plan.rank_batches(epoch, rank).ravel().tolist())
    assert len(covered) > 0.95 * len(SHARDS)  # what one epoch leaves out comes round in another


def test_a_window_mixes_its_blocks():
    window = _plan(block=4, window=3).slot_windows(0, 0)[0]
    assert len(window.blocks) == 3
    owners = np.searchsorted(block_bounds(SHARDS, 4), window.samples[:6], side="right") - 1
    assert len(set(owners.tolist())) > 1


@pytest.mark.parametrize("workers", [1, 2, 3])
@pytest.mark.parametrize("start", [0, 1, 2, 4, 5, 7])
def test_loader_order_continues_from_any_resume_batch(workers, start):
    plan = _plan(world=2, workers=workers)
    full = plan.rank_batches(5, 1)
    order = _loader_order(plan, 5, 1, start)
    assert len(order) == len(full) - start
    assert all(np.array_equal(a, b) for a, b in zip(order, full[start:], strict=True))


def test_too_few_samples_is_a_clear_error():
    with pytest.raises(ValueError, match="cannot fill one batch for each of 2 ranks x 2 loader workers"):
        EpochPlan(block_bounds([0] * 10, 2), world_size=2, workers=2, batch_size=4)
    with pytest.raises(ValueError, match="rank 2 is outside"):
        _plan(world=2).rank_batches(0, 2)
    with pytest.raises(ValueError, match="resume batch 999"):
        _plan().worker_role(0, 999)


def test_position_state_round_trip_and_plan_check():
    plan = _plan(workers=2, batch=4)
    state = LoaderPosition(epoch=3, batches=5).state_dict(plan)
    assert state["samples_consumed"] == 20
    assert LoaderPosition.from_state(state) == LoaderPosition(3, 5)
    check_resumable(state, plan)
    with pytest.raises(ValueError, match="batch_size: saved 4 now 8"):
        check_resumable(state, _plan(workers=2, batch=8))
    with pytest.raises(ValueError, match="blocks: saved"):
        check_resumable(state, _plan(workers=2, batch=4, block=5))
