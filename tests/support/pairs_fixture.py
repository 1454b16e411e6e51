"""Committed pair partitions for tests and benchmarks, written exactly as the Pair index contract says.

In: real HR images (T91 PNGs, product JPEGs from ../shared/data), a `Storage`, a bicubic recipe name, a
partition date and a tile geometry. Out: a committed partition `pairs/<recipe>/<partition>` holding
tar shards (members `<pair_id>.hr.npy.zst` / `<pair_id>.lr.png`, the pairs job's default lossless codecs,
`pipeline.tile_codec`) written by `ShardWriter`,
an `index.parquet` in the declared pair schema (`schemas/pairs.py`, a superset of the contract's core
columns in COMMON.md) and a manifest written by `PartitionWriter.commit` with the pairs job's
schema_versions key; the function returns that `Manifest`.

LR tiles come from the recipe of `pipeline.degrade` (Pillow BICUBIC for bicubic_*; any recipe with its
params sampled as the pairs job samples them, variant 0) and are cut by `tile_pair`, so the tiles match
what the pairs job produces. Splits are assigned per image (every `val_every`-th image
by sorted id goes to "val"). Labels come from `pipeline.degrade.labels.pair_labels` and
`pipeline.clean.quality.measure_degradation`, as in the pairs job; `labels=False` leaves them NaN (fast, for
loader benchmarks). `source_*` columns describe no real image partition: the images are files.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from pipeline.clean.quality import measure_degradation
from pipeline.commit import PartitionWriter
from pipeline.degrade import SeedKey, get_recipe
from pipeline.degrade.labels import pair_labels
from pipeline.degrade.tiles import TileConfig, tile_pair
from pipeline.shards import ShardWriter
from pipeline.storage import Storage
from pipeline.tile_codec import encode_tile, member_name
from schemas.manifest import Manifest
from schemas.pairs import PAIR_INDEX_SCHEMA
from schemas.validate import records_to_table, schema_version

NAN = float("nan")


def load_images(
    folder: Path, limit: int | None = None, max_side: int | None = None
) -> list[tuple[str, np.ndarray]]:
    """(file stem, uint8 HxWx3) for the first `limit` images of `folder` by name, optionally downsized."""
    paths = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    images = []
    for path in paths[:limit]:
        with Image.open(path) as img:
            rgb = img.convert("RGB")
            if max_side and max(rgb.size) > max_side:
                factor = max_side / max(rgb.size)
                rgb = rgb.resize(
                    (round(rgb.width * factor), round(rgb.height * factor)), Image.Resampling.BICUBIC
                )
            images.append((path.stem, np.asarray(rgb)))
    return images


HR_MEMBER, LR_MEMBER = member_name("hr", "zstd"), member_name("lr", "png")


def write_pair_partition(
    storage: Storage,
    images: Iterable[tuple[str, np.ndarray]],
    recipe: str = "bicubic_x4",
    partition: str = "2026-01-01",
    tiles: TileConfig | None = None,
    val_every: int = 4,
    shard_bytes: int = 1 << 20,
    labels: bool = True,
) -> Manifest:
    """Degrade, tile, shard, index and commit `images` as `pairs/<recipe>/<partition>`; return the manifest."""
    degrade = get_recipe(recipe)
    scale = degrade.scale
    tiles = tiles or TileConfig(hr_tile=128, overlap=0, min_hr_side=64)
    dataset = f"pairs/{recipe}"
    writer = PartitionWriter(storage, dataset, partition)
    shards = ShardWriter(sink=lambda path, name: writer.upload(name, path), target_bytes=shard_bytes)
    keyed = sorted(
        ((hashlib.sha256(arr.tobytes()).hexdigest()[:32], stem, arr) for stem, arr in images),
        key=lambda t: t[0],
    )
    rows = []
    for number, (image_id, product_id, image) in enumerate(keyed):
        split = "val" if val_every and number % val_every == val_every - 1 else "train"
        hr = degrade.crop_hr(image)
        params = degrade.sample_params(SeedKey(image_id, 0))  # {} for bicubic
        lr = degrade.apply(image, params)
        severity = degrade.severity(params)
        for tile in tile_pair(hr, lr, scale, tiles).tiles:
            pair_id = f"{image_id}_0_{tile.y}_{tile.x}"
            loc = shards.add(
                pair_id, {HR_MEMBER: encode_tile(tile.hr, "zstd"), LR_MEMBER: encode_tile(tile.lr, "png")}
            )
            label = pair_labels(tile.hr, np.ascontiguousarray(tile.lr), degrade, params) if labels else None
            nr = measure_degradation(np.ascontiguousarray(tile.lr)) if labels else None
            rows.append(
                {
                    "pair_id": pair_id,
                    "image_id": image_id,
                    "product_id": product_id,
                    "split": split,
                    "recipe": recipe,
                    "recipe_version": degrade.version,
                    "scale": scale,
                    "variant": 0,
                    "tile_y": tile.y,
                    "tile_x": tile.x,
                    "hr_width": tile.hr.shape[1],
                    "hr_height": tile.hr.shape[0],
                    "lr_width": tile.lr.shape[1],
                    "lr_height": tile.lr.shape[0],
                    "shard": loc.shard,
                    "hr_offset": loc.members[HR_MEMBER][0],
                    "hr_size": loc.members[HR_MEMBER][1],
                    "lr_offset": loc.members[LR_MEMBER][0],
                    "lr_size": loc.members[LR_MEMBER][1],
                    "params": json.dumps(params),
                    "psnr_y": label.psnr_y if label else NAN,
                    "ssim_y": label.ssim_y if label else NAN,
                    "quality_score": label.quality_score if label else NAN,
                    "quality_class": label.quality_class if label else "unlabelled",
                    "blur_sigma": severity.blur_sigma,
                    "noise_sigma": severity.noise_sigma,
                    "jpeg_quality": severity.jpeg_quality,
                    "lr_sharpness": nr.sharpness if nr else NAN,
                    "lr_noise_sigma": nr.noise_sigma if nr else NAN,
                    "lr_blockiness": nr.blockiness if nr else NAN,
                    "image_width": image.shape[1],
                    "image_height": image.shape[0],
                    "source_partition": partition,
                    "source_shard": "shards/000000.tar",
                    "partition": partition,
                }
            )
    shards.close()
    table = records_to_table(rows, PAIR_INDEX_SCHEMA)
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    writer.write("index.parquet", buffer.getvalue())
    counts = {"pairs": len(rows), "images": len(keyed)}
    return writer.commit(
        counts=counts,
        schema_versions={"pair_index": schema_version(PAIR_INDEX_SCHEMA)},
        extra={"recipe": degrade.describe(), "source_partition": partition},
    )


def copy_root(source: Storage, target: Storage, prefix: str = "pairs") -> None:
    """Mirror every file under `prefix` of `source` to `target` (e.g. a local fixture onto moto S3)."""
    for rel in source.list(prefix, recursive=True):
        target.write_bytes(rel, source.read_bytes(rel))


TINY_PARTITION = "2026-01-01"


@pytest.fixture(scope="session")
def tiny_pairs(shared_data, tmp_path_factory) -> Storage:
    """A local root holding committed pairs/bicubic_x4/2026-01-01 cut from 8 T91 images (up to 128 px HR tiles,
    32 px LR, at least half that; every 4th image in the val split). Session-scoped: treat it as read-only."""
    storage = Storage(f"file://{tmp_path_factory.mktemp('tiny-pairs')}/root")
    images = load_images(shared_data / "sr_train" / "T91", limit=8)
    write_pair_partition(storage, images, "bicubic_x4", TINY_PARTITION, shard_bytes=256 * 1024)
    return storage
