"""Run one loader contender in this process and time its epochs: Crisp's data module or LitData.

In (a JSON spec file, written by bench/bench_loader.py, which starts this module as a child:
`python -m bench.loader_contenders crisp|litdata|optimize SPEC.json`):
- crisp: a pairs root URI + storage options, workers, epochs, batch size, LR patch;
- litdata: an optimized folder or s3:// URI + LitData storage options, the same knobs, a cache root and how
  many extra epochs to run on a warm cache;
- optimize: the train tiles (shard path, pair id, HR/LR offsets and sizes) and an output folder.
Out: one JSON line on stdout: {"epochs": [{"seconds", "samples"}...]} (+ "warm"), or {"seconds"} for optimize.

Both loaders do the same per-sample work: Crisp's `decode_tile` of the LR and HR tiles, its `augment`
(aligned random crop, flips, transpose) and `to_tensor`. An epoch is timed from `iter(loader)` to its last
batch. Crisp's loader keeps its workers across epochs (persistent workers), and so does LitData's on a
local folder (one StreamingDataLoader for every epoch, `persistent_workers=True`); the first epoch of
each includes starting them. LitData's S3 epochs each get an empty chunk cache unless told to reuse the
last one, which takes a new dataset and loader, so its S3 workers start every epoch. LitData 0.2.76 builds its obstore client with fixed client
options that lack `allow_http`, so obstore refuses the http:// test endpoint ("BadScheme"); the LitData
child adds the flag to that module constant (PLATFORM-NOTES: AWS_ALLOW_HTTP alone does not help).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

# Imported here, not in the transform: loader workers fork from this process, and a lazy import would cost
# every LitData worker seconds on its first sample, every epoch (Crisp's workers inherit these modules too).
from pipeline.tile_codec import decode_tile
from training.data.dataset import augment, to_tensor

REPO = Path(__file__).resolve().parents[1]
SITE = REPO / "bench" / ".venvs" / "litdata-site"  # litdata + obstore, installed --no-deps (no torchvision)
PARTITION, RECIPE, SCALE = "2026-01-01", "bicubic_x4", 4


def timed_epochs(make_loader, epochs: int, prepare=None) -> list[dict[str, float]]:
    """Per epoch: seconds from `iter()` to the last batch made ready by `prepare` (what the trainer does to a
    batch before the step: Crisp's float conversion), and samples seen."""
    out = []
    for epoch in range(epochs):
        loader = make_loader(epoch)
        started, samples = time.perf_counter(), 0
        for batch in loader:
            if prepare is not None:
                batch = prepare(batch)
            samples += int(batch["lr"].shape[0])
        out.append({"seconds": time.perf_counter() - started, "samples": samples})
    return out


def crisp_epochs(spec: dict[str, Any]) -> dict[str, Any]:
    from training.data.module import DataConfig, SRDataModule
    from training.data.sampler import LoaderPosition

    # setup() wants validation data; the benchmark never iterates it, so any non-empty split will do
    config = DataConfig(
        root=spec["root"],
        storage_options=spec["options"],
        recipe=RECIPE,
        partitions=[PARTITION],
        patch_size=spec["patch"],
        batch_size=spec["batch_size"],
        workers=spec["workers"],
        val_split="train",
        **spec.get("data", {}),
    )
    module = SRDataModule(config, SCALE)
    loader = module.train_dataloader()

    def make(epoch: int):
        module.position = LoaderPosition(epoch=epoch)  # no trainer: the module reads the epoch from here
        return loader

    # the loader ships uint8; the module makes float [0, 1] of it after transfer, timed here too
    return {
        "epochs": timed_epochs(make, spec["epochs"], lambda batch: module.on_after_batch_transfer(batch, 0))
    }


def decode_and_augment(item: dict[str, Any], patch: int) -> dict[str, Any]:
    """LitData's per-sample transform: Crisp's own PNG decode, aligned crop + flips, and tensors."""
    lr, hr = augment(decode_tile(item["lr"]), decode_tile(item["hr"]), SCALE, patch, np.random.default_rng())
    return {"lr": to_tensor(lr), "hr": to_tensor(hr)}


def litdata_epochs(spec: dict[str, Any]) -> dict[str, Any]:
    import functools

    from litdata import StreamingDataLoader, StreamingDataset
    from litdata.streaming import downloader

    downloader._OBSTORE_CLIENT_OPTIONS = {**downloader._OBSTORE_CLIENT_OPTIONS, "allow_http": True}
    transform = functools.partial(decode_and_augment, patch=spec["patch"])

    caches: list[str | None] = []  # a local input_dir is read in place: no cache
    remote = spec["input_dir"].startswith("s3://")
    kept: list[Any] = []  # local: one loader for every epoch, its workers persistent (as Crisp's)

    def make(epoch: int, reuse_cache: bool = False):
        if not remote and kept:
            return kept[0]
        if not reuse_cache:
            caches.append(
                tempfile.mkdtemp(prefix="litdata-cache-", dir=spec["cache_root"]) if remote else None
            )
        dataset = StreamingDataset(
            spec["input_dir"],
            cache_dir=caches[-1],
            shuffle=True,
            drop_last=True,
            seed=epoch,
            storage_options=spec["options"] or None,
            transform=transform,
        )
        workers = spec["workers"]
        loader = StreamingDataLoader(
            dataset,
            batch_size=spec["batch_size"],
            num_workers=workers,
            persistent_workers=workers > 0 and not remote,
        )
        if not remote:
            kept.append(loader)
        return loader

    result = {"epochs": timed_epochs(make, spec["epochs"])}
    if spec["warm_epochs"]:  # the last cold epoch filled its cache: read the same cache again
        result["warm"] = timed_epochs(
            lambda e: make(spec["epochs"] + e, reuse_cache=True), spec["warm_epochs"]
        )
    return result


def optimize_tiles(spec: dict[str, Any]) -> dict[str, Any]:
    """`litdata.optimize` the given tiles (shard path, offsets, sizes) into `output_dir` as PNG bytes."""
    from litdata import optimize

    started = time.perf_counter()
    optimize(
        fn=read_tile,
        inputs=spec["tiles"],
        output_dir=spec["output_dir"],
        chunk_bytes=spec["chunk_bytes"],
        num_workers=1,
        reorder_files=False,
        verbose=False,
        mode="overwrite",
    )
    return {"seconds": time.perf_counter() - started}


def read_tile(tile: list[Any]) -> dict[str, Any]:
    path, key, hr_offset, hr_size, lr_offset, lr_size = tile
    with open(path, "rb") as fh:
        fh.seek(hr_offset)
        hr = fh.read(hr_size)
        fh.seek(lr_offset)
        return {"key": key, "hr": hr, "lr": fh.read(lr_size)}


CONTENDERS = {"crisp": crisp_epochs, "litdata": litdata_epochs, "optimize": optimize_tiles}


def run_contender(kind: str, spec: dict[str, Any], threads: int = 1) -> dict[str, Any]:
    """Run contender `kind` on `spec` in a child (OMP_NUM_THREADS=`threads`; LitData's site on the path)."""
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(threads),
        "PYTHONPATH": str(REPO),
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    if kind != "crisp":
        env["PYTHONPATH"] = f"{SITE}{os.pathsep}{REPO}"
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix=f"{kind}-spec-") as spec_file:
        json.dump(spec, spec_file)  # a file, not argv: the tile list outgrows an argument
        spec_file.flush()
        command = [sys.executable, "-m", "bench.loader_contenders", kind, spec_file.name]
        done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"{kind} child failed: {(done.stderr or done.stdout).strip()[-800:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in CONTENDERS:
        sys.exit(f"usage: python -m bench.loader_contenders {{{'|'.join(CONTENDERS)}}} SPEC.json")
    print(json.dumps(CONTENDERS[sys.argv[1]](json.loads(Path(sys.argv[2]).read_text()))))
