"""Make the LR/HR tile pairs of one committed image shard: the pure per-shard function the Dask job maps.

In: a storage root and options (workers open storage themselves), one image shard as listed in its
partition manifest (`InputShard`: path, size, sha256), that shard's image-index rows, a recipe name, a
`PairsConfig` and the attempt folder to write into. Out: a `ShardOutput` with the pair index records,
the skip records (reason code per image and variant that produced no pair) and the pair shards written
(name, size, sha256), plus throughput counters.

Per image (sorted by image_id) and variant: decode the HR, skip it with `too_small` when its modcropped
short side is below `min_tile` (or `decode_error` when Pillow cannot decode it: only Pillow's decode
errors, `pipeline.clean.normalize.DECODE_ERRORS`, become skips; any other exception, in decoding, degrading or labelling, is a
bug and fails the task), sample params from the seed key (image_id, recipe, recipe version, variant),
degrade, tile, skip blank tiles (`flat_tile`, recorded), label each tile, encode the HR tile with
`hr_codec` (zstd `.npy` by default) and the LR tile as PNG (both lossless, `pipeline.tile_codec`) and
append them to the output tar. Output shards are named after the input shard
(`shards/000003.tar`, then `shards/000003-001.tar`... past `shard_target_bytes`), written in a fixed
order with byte-deterministic tars, so the same input gives the same bytes on any worker, any worker
count and any rerun; a retried task overwrites the same objects with the same bytes.
"""

from __future__ import annotations

import hashlib
import io
import json
import posixpath
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from pipeline.clean.normalize import DECODE_ERRORS
from pipeline.clean.quality import measure_degradation
from pipeline.commit import ManifestError, check_bytes
from pipeline.degrade import Recipe, SeedKey
from pipeline.degrade.labels import pair_labels
from pipeline.degrade.tiles import tile_pair
from pipeline.ingest.read import DATASET as IMAGES
from pipeline.pairs.config import PairsConfig
from pipeline.shards import ShardWriter
from pipeline.sr_metrics import modcrop, rgb_to_y
from pipeline.storage import Storage
from pipeline.tile_codec import encode_tile, member_name
from schemas.reasons import Reason

LR_EXT = member_name("lr", "png")


@dataclass(frozen=True)
class InputShard:
    """One committed image shard: its partition, role name and the manifest's path/size/checksum."""

    partition: str
    name: str  # role name, e.g. shards/000003.tar (the image index's `shard` column)
    path: str  # storage-relative path of the committed object
    size: int
    sha256: str


@dataclass(frozen=True)
class OutputFile:
    name: str  # role name inside the pairs attempt, e.g. shards/000003.tar
    size: int
    sha256: str


@dataclass(frozen=True)
class ShardOutput:
    source: InputShard
    records: list[dict[str, Any]]
    skips: list[dict[str, Any]]
    files: list[OutputFile]
    images: int = 0  # images read from the shard
    hr_pixels: int = 0  # decoded HR pixels degraded (skipped images excluded)
    seconds: float = field(default=0.0, compare=False)


def output_shard_name(source_name: str, part: int) -> str:
    """`shards/000003.tar` -> `shards/000003.tar` (part 0), `shards/000003-001.tar` (part 1)..."""
    stem = posixpath.basename(source_name)
    stem = stem[: -len(".tar")] if stem.endswith(".tar") else stem
    return f"shards/{stem}.tar" if part == 0 else f"shards/{stem}-{part:03d}.tar"


def pair_id(image_id: str, variant: int, tile_y: int, tile_x: int) -> str:
    return f"{image_id}_{variant}_{tile_y}_{tile_x}"


def params_json(params: Mapping[str, Any]) -> str:
    """Canonical JSON of recorded params (sorted keys; floats round-trip exactly)."""
    return json.dumps(params, sort_keys=True, separators=(",", ":"))


def sample_source(row: Mapping[str, Any], recipe: str, shard: InputShard) -> dict[str, Any]:
    """The fields every sample record and skip of a non-pair family takes from its source image."""
    image_id = str(row["image_id"])
    if "." in image_id or not image_id:
        raise ValueError(f"image_id {image_id!r} cannot key a sample (empty or contains '.')")
    return {"image_id": image_id, "product_id": row.get("product_id"), "recipe": recipe,
            "source_partition": shard.partition, "source_shard": shard.name, "partition": shard.partition}  # fmt: skip


def image_skip(
    source: Mapping[str, Any], reason: Any, detail: str, width: int | None, height: int | None
) -> dict[str, Any]:
    """One pair-skip-ledger row for a whole image (variant 0, no tile) of a non-pair family."""
    return {**source, "variant": 0, "reason": str(reason.value), "detail": detail, "image_width": width,
            "image_height": height, "tile_y": None, "tile_x": None}  # fmt: skip


def decode_or_skip(
    member: bytes, source: Mapping[str, Any]
) -> tuple[np.ndarray | None, list[dict[str, Any]]]:
    """The stored image's pixels and no skip, or None and its `decode_error` skip row (bytes Pillow cannot
    decode are a recorded skip; other errors are bugs)."""
    try:
        return decode_hr(member), []
    except DECODE_ERRORS as exc:
        return None, [image_skip(source, Reason.DECODE_ERROR, f"{type(exc).__name__}: {exc}", None, None)]


def decode_hr(data: bytes) -> np.ndarray:
    """HR pixels as uint8 HxWx3 RGB (ingest stores normalized RGB; L or RGBA are converted)."""
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        return np.asarray(img.convert("RGB") if img.mode != "RGB" else img)


def is_flat(hr_tile: np.ndarray, max_std: float) -> bool:
    """True for a blank HR tile: luma std over every 2nd pixel below `max_std` (0 never flags)."""
    return max_std > 0 and float(rgb_to_y(hr_tile[::2, ::2]).std()) < max_std


def make_pairs_for_shard(
    storage_root: str,
    storage_options: Mapping[str, Any],
    shard: InputShard,
    index_rows: Sequence[Mapping[str, Any]],
    recipe_name: str,
    config: PairsConfig,
    output_dir: str,
) -> ShardOutput:
    """Pairs of every image of `shard`; the tars are written under `output_dir` (storage-relative)."""
    recipe = config.recipe(recipe_name)
    return map_images(
        Storage(storage_root, dict(storage_options)),
        shard,
        index_rows,
        output_dir,
        config.shard_target_bytes,
        lambda member, row, writer: _pairs_of_image(member, row, recipe, config, shard, writer),
    )


def map_images(
    storage: Storage,
    shard: InputShard,
    index_rows: Sequence[Mapping[str, Any]],
    output_dir: str,
    target_bytes: int,
    per_image: Callable[[bytes, Mapping[str, Any], ShardWriter], tuple[list, list, int]],
) -> ShardOutput:
    """The loop every per-shard sample maker shares: `per_image(stored bytes, index row, writer)` ->
    (records, skips, pixels worked on) for each image in image_id order, into output tars named after
    the input shard (`ShardOutputs`)."""
    started = time.perf_counter()
    records: list[dict[str, Any]] = []
    skips: list[dict[str, Any]] = []
    pixels = 0
    with ShardOutputs(storage, shard, output_dir, target_bytes) as out:
        for row, member in out.members(index_rows):
            image_records, image_skips, image_pixels = per_image(member, row, out.writer)
            records.extend(image_records)
            skips.extend(image_skips)
            pixels += image_pixels
    out.name_shards(records)
    return ShardOutput(
        source=shard,
        records=records,
        skips=skips,
        files=out.files,
        images=len(index_rows),
        hr_pixels=pixels,
        seconds=time.perf_counter() - started,
    )


class ShardOutputs:
    """The I/O every per-shard sample maker shares: the input shard read in one GET and checked against
    its manifest entry, its members in image_id order, and output tars named after the input shard
    (`output_shard_name`) uploaded into the attempt folder as they fill. Use as a context manager; after
    it, `files` lists the uploads and `name_shards(records)` turns the records' part names into them."""

    def __init__(self, storage: Storage, shard: InputShard, output_dir: str, target_bytes: int) -> None:
        self.storage, self.shard, self.output_dir = storage, shard, output_dir
        self.files: list[OutputFile] = []
        self.writer = ShardWriter(sink=self._upload, target_bytes=target_bytes, prefix="part")

    def __enter__(self) -> ShardOutputs:
        shard = self.shard
        self.data = (
            check_bytes(  # one GET for the whole shard beats one per image on S3, and it can be checked
                self.storage.read_bytes(shard.path),
                f"{IMAGES}/{shard.partition}",
                shard.name,
                self.storage.uri(shard.path),
                shard.size,
                shard.sha256,
            )
        )
        self.writer.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.writer.__exit__(*exc_info)

    def members(self, index_rows: Sequence[Mapping[str, Any]]):
        """(index row, stored image bytes) for every row, sorted by image_id."""
        for row in sorted(index_rows, key=lambda r: r["image_id"]):
            if row["shard"] != self.shard.name:
                raise ValueError(
                    f"index row {row['image_id']} belongs to {row['shard']}, not {self.shard.name}"
                )
            offset, size = int(row["offset"]), int(row["size"])
            if offset < 0 or offset + size > len(self.data):
                raise ManifestError(
                    f"image {row['image_id']} lies outside {self.shard.path} ({offset}+{size})"
                )
            yield row, self.data[offset : offset + size]

    def name_shards(self, records: list[dict[str, Any]]) -> None:
        # ShardWriter names parts part/000000.tar; the index gets the output name
        for record in records:
            record["shard"] = output_shard_name(self.shard.name, _part_index(record["shard"]))

    def _upload(self, local_path: str, part_name: str) -> None:
        name = output_shard_name(self.shard.name, _part_index(part_name))
        digest, size = hashlib.sha256(), 0
        with open(local_path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
                size += len(block)
        self.storage.upload(
            local_path, f"{self.output_dir}/{name}", move=True
        )  # atomic: a retry overwrites it whole
        self.files.append(OutputFile(name, size, digest.hexdigest()))


def _part_index(part_name: str) -> int:
    return int(posixpath.basename(part_name).split(".")[0])


def _pairs_of_image(
    member: bytes,
    row: Mapping[str, Any],
    recipe: Recipe,
    config: PairsConfig,
    shard: InputShard,
    writer: ShardWriter,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
    """Every variant's tiles of one image appended to `writer`: (records, skips, HR pixels degraded)."""
    image_id = str(row["image_id"])
    if "." in image_id or not image_id:
        raise ValueError(f"image_id {image_id!r} cannot key a pair (empty or contains '.')")
    common = {
        "image_id": image_id,
        "product_id": row.get("product_id"),
        "recipe": recipe.name,
        "source_partition": shard.partition,
        "source_shard": shard.name,
        "partition": shard.partition,
    }

    def skipped(
        reason: Reason,
        detail: str,
        width: int | None,
        height: int | None,
        variants: Sequence[int],
        tile: tuple[int, int] | tuple[None, None] = (None, None),
    ):
        return [
            {**common, "variant": v, "reason": reason.value, "detail": detail, "image_width": width,
             "image_height": height, "tile_y": tile[0], "tile_x": tile[1]}
            for v in variants
        ]  # fmt: skip

    all_variants = range(config.variants)

    try:
        hr = decode_hr(member)
    except DECODE_ERRORS as exc:  # bytes Pillow cannot decode are a recorded skip; other errors are bugs
        return [], skipped(Reason.DECODE_ERROR, f"{type(exc).__name__}: {exc}", None, None, all_variants), 0
    height, width = hr.shape[:2]
    cropped = modcrop(hr, recipe.scale)
    if min(cropped.shape[:2]) < config.min_tile:
        detail = f"HR {width}x{height} (modcropped {cropped.shape[1]}x{cropped.shape[0]}) < min_tile={config.min_tile}"
        return [], skipped(Reason.TOO_SMALL, detail, width, height, all_variants), 0

    hr_ext = member_name("hr", config.hr_codec)
    records: list[dict[str, Any]] = []
    skips: list[dict[str, Any]] = []
    for variant in all_variants:
        params = recipe.sample_params(SeedKey(image_id, variant))
        lr = recipe.apply(hr, params)
        tiling = tile_pair(cropped, lr, recipe.scale, config.tiles())
        if tiling.skip_reason is not None:
            skips.extend(skipped(tiling.skip_reason, tiling.skip_detail, width, height, [variant]))
            continue
        recorded = params_json(params)
        for tile in tiling.tiles:
            if is_flat(tile.hr, config.flat_tile_std):
                detail = f"HR tile luma std < flat_tile_std={config.flat_tile_std}"
                skips.extend(skipped(Reason.FLAT_TILE, detail, width, height, [variant], (tile.y, tile.x)))
                continue
            labels = pair_labels(tile.hr, tile.lr, recipe, params, config.labels)
            nr = measure_degradation(np.ascontiguousarray(tile.lr))
            key = pair_id(image_id, variant, tile.y, tile.x)
            location = writer.add(
                key,
                {
                    hr_ext: config.encode_hr_tile(tile.hr),
                    LR_EXT: encode_tile(tile.lr, "png", config.png_compress_level),
                },
            )
            (hr_offset, hr_size), (lr_offset, lr_size) = location.members[hr_ext], location.members[LR_EXT]
            records.append(
                {
                    **common,
                    "pair_id": key,
                    "split": row["split"],
                    "recipe_version": recipe.version,
                    "scale": recipe.scale,
                    "variant": variant,
                    "tile_y": tile.y,
                    "tile_x": tile.x,
                    "hr_width": tile.hr.shape[1],
                    "hr_height": tile.hr.shape[0],
                    "lr_width": tile.lr.shape[1],
                    "lr_height": tile.lr.shape[0],
                    "shard": location.shard,
                    "hr_offset": hr_offset,
                    "hr_size": hr_size,
                    "lr_offset": lr_offset,
                    "lr_size": lr_size,
                    "params": recorded,
                    "psnr_y": labels.psnr_y,
                    "ssim_y": labels.ssim_y,
                    "quality_score": labels.quality_score,
                    "quality_class": labels.quality_class,
                    "blur_sigma": labels.blur_sigma,
                    "noise_sigma": labels.noise_sigma,
                    "jpeg_quality": labels.jpeg_quality,
                    "lr_sharpness": nr.sharpness,
                    "lr_noise_sigma": nr.noise_sigma,
                    "lr_blockiness": nr.blockiness,
                    "image_width": width,
                    "image_height": height,
                }
            )
    return records, skips, width * height * config.variants
