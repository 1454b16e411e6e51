"""The clip loader on real synthetic clips: windows of the stored frames with the centre frame's HR,
a pure function of (seed, epoch, batch), disjoint across DDP ranks; validation centres each clip."""

from __future__ import annotations

import pytest
import torch

from pipeline.video.clips import SCALE
from tests.support.synthetic_clips import PARTITION
from training.data.catalog import DataError
from training.data.clips import AlignedWindows, ClipDataConfig, ClipDataModule
from training.data.dataset import to_tensor


def _module(storage, world=1, rank=0, window=3, prealigned=False, **extra):
    fields = {"root": storage.root, "partitions": [PARTITION], "crop": 8, "batch_size": 4, "workers": 0, **extra}
    module = ClipDataModule(ClipDataConfig(**fields), window=window, prealigned=prealigned)
    module.rank_world = lambda: (rank, world)
    module.setup("fit")
    return module


def test_a_batch_is_windows_of_stored_frames_with_the_centre_hr(clips_root):
    module = _module(clips_root)
    batch = module.train_set[(0, 0)]
    assert batch["lr"].shape == (4, 9, 8, 8) and batch["hr"].shape == (4, 3, 8 * SCALE, 8 * SCALE)
    again = module.train_set[(0, 0)]
    assert torch.equal(batch["lr"], again["lr"]) and torch.equal(batch["hr"], again["hr"])
    assert batch["key"] != module.train_set[(1, 0)]["key"]
    # the window's middle frame is the stored LR of the HR centre frame: the same crop, flip and time
    # (away from the crop's edge, where the stored LR also saw pixels outside it)
    from pipeline.degrade.bicubic import bicubic_downscale

    hr = (batch["hr"][0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
    inner = (slice(None), slice(1, -1), slice(1, -1))
    again_lr = to_tensor(bicubic_downscale(hr, SCALE))[inner]
    assert (again_lr - batch["lr"][0, 3:6][inner]).abs().mean() < 1.5 / 255
    assert (again_lr - batch["lr"][0, 0:3][inner]).abs().mean() > 3 / 255  # a neighbour frame moved


def test_ranks_take_disjoint_clips_and_validation_centres_each_clip(clips_root):
    seen = []
    for rank in range(2):
        module = _module(clips_root, world=2, rank=rank, batch_size=2)
        seen.append({k for i in range(len(module.train_set)) for k in module.train_set[(0, i)]["key"]})
    assert seen[0] and seen[1] and not seen[0] & seen[1]
    sample = _module(clips_root, window=5).val_set[0]
    assert sample["lr"].shape == (15, 16, 16) and sample["hr"].shape == (3, 64, 64)


def test_a_window_longer_than_the_clips_or_too_few_clips_are_refused(clips_root):
    with pytest.raises(DataError, match="fewer than data.batch_size"):
        _module(clips_root, window=7)
    with pytest.raises(DataError, match="fewer than data.batch_size"):
        _module(clips_root, batch_size=10_000)


def test_a_prealigned_model_gets_its_windows_aligned_on_the_centre(clips_root):
    def neighbour_gap(sample):  # mean |neighbour - centre| inside the frame, over the window's neighbours
        lr = sample["lr"].reshape(-1, 3, *sample["lr"].shape[-2:])[..., 2:-2, 2:-2]
        return float((lr[[0, 1, 3, 4]] - lr[2]).abs().mean())

    raw = _module(clips_root, window=5).val_set[0]
    aligned = _module(clips_root, window=5, prealigned=True).val_set[0]
    assert torch.equal(raw["lr"][6:9], aligned["lr"][6:9]) and torch.equal(raw["hr"], aligned["hr"])
    assert neighbour_gap(aligned) < neighbour_gap(raw) / 2, (neighbour_gap(aligned), neighbour_gap(raw))
    batch = _module(clips_root, prealigned=True).train_set[(0, 0)]
    assert batch["lr"].shape == (4, 9, 8, 8)


def test_aligned_windows_are_remembered_per_clip_and_start_within_their_capacity(clips_root):
    cached = _module(clips_root, window=5, prealigned=True)
    uncached = _module(clips_root, window=5, prealigned=True, align_cache_windows=0)
    for epoch in (0, 1):  # the second epoch reads the windows the first one aligned
        assert torch.equal(cached.train_set[(epoch, 0)]["lr"], uncached.train_set[(epoch, 0)]["lr"])
    assert torch.equal(cached.val_set[0]["lr"], uncached.val_set[0]["lr"])
    assert not uncached.train_set.aligned.windows
    memo = cached.train_set.aligned
    assert memo is cached.val_set.aligned and 0 < len(memo.windows) <= 2 * 4 + 1
    frames = next(iter(memo.windows.values()))
    key = next(iter(memo.windows))
    assert memo(*key, frames[::-1]) is frames  # a remembered window is not aligned again
    small = AlignedWindows(prealigned=True, capacity=1)
    first, second = small(0, 0, frames), small(1, 0, frames)
    assert list(small.windows) == [(1, 0)] and small(0, 0, frames) is not first
    assert second.shape == frames.shape
    raw = AlignedWindows(prealigned=False, capacity=4)
    assert raw(0, 0, frames) is frames and not raw.windows
