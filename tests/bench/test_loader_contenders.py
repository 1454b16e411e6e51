"""Tests of the loader contenders: tile reads, the shared per-sample transform, epoch timing, both loaders."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
from PIL import Image

from bench.bench_loader import train_tiles
from bench.loader_contenders import (
    SITE,
    crisp_epochs,
    decode_and_augment,
    read_tile,
    run_contender,
    timed_epochs,
)
from pipeline.tile_codec import decode_tile
from tests.support.pairs_fixture import tiny_pairs  # noqa: F401 (a fixture, used by name)


@pytest.fixture
def tiny_root(tiny_pairs) -> Path:  # noqa: F811
    return Path(urlparse(tiny_pairs.root).path)


def test_read_tile_returns_the_pair_members(tiny_root):
    tiles = train_tiles(tiny_root, patch=16)
    assert tiles and all(Path(t[0]).is_file() for t in tiles)
    item = read_tile(tiles[0])
    assert item["key"] == tiles[0][1]
    hr, lr = decode_tile(item["hr"]), decode_tile(item["lr"])
    assert hr.shape[0] == 4 * lr.shape[0] >= 64 and hr.shape[1] == 4 * lr.shape[1] >= 64


def test_decode_and_augment_crops_aligned_patches(tiny_root):
    item = read_tile(train_tiles(tiny_root, patch=16)[0])
    sample = decode_and_augment(item, patch=16)
    assert sample["lr"].shape == (3, 16, 16) and sample["hr"].shape == (3, 64, 64)
    assert float(sample["hr"].min()) >= 0.0 and float(sample["hr"].max()) <= 1.0
    # the HR patch downscaled is close to the LR patch: the crops are aligned
    hr = (sample["hr"].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    small = np.asarray(Image.fromarray(hr).resize((16, 16), Image.Resampling.BICUBIC)).astype(float)
    assert np.abs(small - sample["lr"].permute(1, 2, 0).numpy() * 255).mean() < 3


def test_timed_epochs_counts_samples_per_epoch():
    batches = [{"lr": np.zeros((4, 3, 2, 2))}, {"lr": np.zeros((3, 3, 2, 2))}]
    runs = timed_epochs(lambda epoch: batches[: epoch + 1], 2)
    assert [r["samples"] for r in runs] == [4, 7] and all(r["seconds"] >= 0 for r in runs)


def test_crisp_epochs_reads_full_batches_from_a_local_root(tiny_pairs):  # noqa: F811
    spec = {"root": tiny_pairs.root, "options": {}, "workers": 0, "epochs": 2, "batch_size": 4, "patch": 16}
    runs = crisp_epochs(spec)["epochs"]
    assert len(runs) == 2 and runs[0]["samples"] > 0 and runs[0]["samples"] % 4 == 0


@pytest.mark.slow
@pytest.mark.skipif(not (SITE / "litdata").is_dir(), reason="LitData is installed by `make bench` only")
def test_litdata_optimize_and_stream_the_same_tiles(tiny_root, tmp_path):
    tiles = train_tiles(tiny_root, patch=16)
    out = tmp_path / "optimized"
    assert (
        run_contender("optimize", {"tiles": tiles, "output_dir": str(out), "chunk_bytes": "1MB"})["seconds"]
        > 0
    )
    assert (out / "index.json").is_file()
    spec = {"input_dir": str(out), "options": {}, "workers": 0, "epochs": 1, "batch_size": 4, "patch": 16,
            "cache_root": str(tmp_path), "warm_epochs": 0}  # fmt: skip
    runs = run_contender("litdata", spec)["epochs"]
    assert runs[0]["samples"] == len(tiles) // 4 * 4  # drop_last: every full batch of the same tiles
    # two workers kept across two epochs (one local loader, persistent workers): every epoch served whole
    runs = run_contender("litdata", {**spec, "workers": 2, "epochs": 2})["epochs"]
    assert len(runs) == 2 and all(0 < r["samples"] <= len(tiles) for r in runs), runs
