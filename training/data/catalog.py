"""Resolve committed pair partitions into one in-memory pair catalog for training.

In: a `Storage` at the Crisp root, a recipe name (`bicubic_x4`), the partitions to use (a list of
dates, or "all" for every committed one) and the model's scale. Out: a `PairCatalog`: the manifests
read, the concatenated index rows (sorted by partition, then pair_id, so the order never depends on
shard layout), each row's shard path relative to the root, the data manifest hash and the pair schema
version; or a `DataError` (a ValueError) that names what is missing and how to fix it, raised before
any training starts: unknown recipe, recipe/scale mismatch, nothing committed, a partition that is
not committed, an index that lacks contract columns or holds another recipe/scale.

Only files listed in a manifest are read (the commit protocol's rule), and each index is checked
against the sha256 its manifest records (`pipeline.commit.ChecksumMismatch` names a corrupted one; the
pair shards are range-read by the dataset, which a whole-file checksum cannot cover). The data
manifest hash is sha256 over the sorted `content_digest`s of the manifests joined by newlines: it
changes exactly when the training data changes, whoever rewrote which partition.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.commit import PartitionNotCommittedError, committed_partitions, read_manifest, read_verified
from pipeline.degrade import RECIPES, get_recipe
from pipeline.storage import Storage
from schemas.errors import InputError
from schemas.manifest import Manifest
from training.archs.levels import LEVELS

INDEX_NAME = "index.parquet"
PAIR_SCHEMA_KEY = "pair_index"  # the manifest's schema_versions key of the pair index (schemas/pairs.py)
# The contract columns training reads; the rest of the index stays on storage.
TRAINING_COLUMNS = (
    "pair_id",
    "image_id",
    "split",
    "recipe",
    "scale",
    "hr_width",
    "hr_height",
    "lr_width",
    "lr_height",
    "shard",
    "hr_offset",
    "hr_size",
    "lr_offset",
    "lr_size",
    "partition",
    "psnr_y",  # the bicubic label, for DataConfig.max_label_psnr_y
    *LEVELS,  # the damage each pair recorded (noise sigma, JPEG quality), a conditioned restorer's levels
)


class DataError(InputError, ValueError):
    """The training data cannot be used as configured; the message names the data and the fix."""


@dataclass(frozen=True)
class PairCatalog:
    recipe: str
    scale: int
    partitions: list[str]
    manifests: list[Manifest]
    rows: pa.Table  # TRAINING_COLUMNS + shard_path, sorted by (partition, pair_id)
    manifest_hash: str
    schema_version: int | None

    def split(self, name: str) -> pa.Table:
        return self.rows.filter(pc.equal(self.rows["split"], name))


def manifest_hash(manifests: list[Manifest]) -> str:
    """sha256 of the sorted content digests, newline-joined (independent of partition order)."""
    return hashlib.sha256("\n".join(sorted(m.content_digest for m in manifests)).encode()).hexdigest()


def check_recipe_scale(recipe: str, scale: int) -> None:
    """DataError unless `recipe` is a known recipe that produces pairs at `scale`."""
    if recipe not in RECIPES:
        raise DataError(
            f"unknown recipe {recipe!r} in data.recipe; known recipes: {', '.join(sorted(RECIPES))}"
        )
    recipe_scale = get_recipe(recipe).scale
    if recipe_scale != scale:
        raise DataError(
            f"recipe {recipe!r} makes x{recipe_scale} pairs but the model is x{scale}: "
            f"set data.recipe to an x{scale} recipe (e.g. bicubic_x{scale}) or model.scale to {recipe_scale}"
        )


def _read_index(storage: Storage, manifest: Manifest) -> pa.Table:
    base = f"{manifest.dataset}/{manifest.partition}"
    try:
        entry = manifest.file(INDEX_NAME)
    except KeyError:
        raise DataError(
            f"{storage.uri(base)} is committed without an {INDEX_NAME}; rerun the pairs job"
        ) from None
    table = pq.read_table(io.BytesIO(read_verified(storage, manifest, entry.name)))
    missing = [c for c in TRAINING_COLUMNS if c not in table.column_names]
    if missing:
        raise DataError(f"{storage.uri(base)}/{INDEX_NAME} lacks pair-contract columns {missing}")
    table = table.select(list(TRAINING_COLUMNS))
    shard_paths = {f.name: f"{base}/{f.path}" for f in manifest.files}
    roles = table["shard"].to_pylist()
    unknown = sorted({r for r in roles if r not in shard_paths})
    if unknown:
        raise DataError(
            f"{storage.uri(base)}/{INDEX_NAME} points at shards not in its manifest: {unknown[:3]}"
        )
    return table.append_column("shard_path", pa.array([shard_paths[r] for r in roles], pa.string()))


def _check_rows(table: pa.Table, recipe: str, scale: int, where: str) -> None:
    recipes = set(table["recipe"].unique().to_pylist())
    scales = set(table["scale"].unique().to_pylist())
    if recipes - {recipe}:
        raise DataError(f"{where} holds pairs of recipe(s) {sorted(recipes)}, expected only {recipe!r}")
    if scales - {scale}:
        raise DataError(
            f"{where} holds pairs at scale(s) {sorted(scales)} but the model is x{scale}: "
            "pick a recipe/partitions made for the model's scale"
        )


def load_catalog(storage: Storage, recipe: str, partitions: list[str] | str, scale: int) -> PairCatalog:
    """Read the manifests and indexes of `pairs/<recipe>` for `partitions` ("all" = every committed one)."""
    check_recipe_scale(recipe, scale)
    dataset = f"pairs/{recipe}"
    if partitions == "all":
        names = committed_partitions(storage, dataset)
        if not names:
            raise DataError(
                f"no committed partitions under {storage.uri(dataset)}: run `crisp pairs --recipe {recipe}` "
                "first, or point data.root at the storage that holds them"
            )
    else:
        names = sorted(set(partitions))
        if not names:
            raise DataError('data.partitions is empty: list partition dates or use "all"')
    manifests, tables = [], []
    for name in names:
        try:
            manifest = read_manifest(storage, dataset, name)
        except PartitionNotCommittedError as exc:
            raise DataError(f"{exc}; committed ones: {committed_partitions(storage, dataset)}") from None
        table = _read_index(storage, manifest)
        _check_rows(table, recipe, scale, storage.uri(f"{dataset}/{name}"))
        manifests.append(manifest)
        tables.append(table)
    rows = pa.concat_tables(tables)
    if rows.num_rows == 0:
        raise DataError(f"partitions {names} of {storage.uri(dataset)} hold no pairs")
    order = np.lexsort((np.asarray(rows["pair_id"].to_pylist()), np.asarray(rows["partition"].to_pylist())))
    rows = rows.take(pa.array(order))
    versions = {m.schema_versions.get(PAIR_SCHEMA_KEY) for m in manifests}
    schema_version = versions.pop() if len(versions) == 1 else None
    return PairCatalog(
        recipe=recipe,
        scale=scale,
        partitions=names,
        manifests=manifests,
        rows=rows,
        manifest_hash=manifest_hash(manifests),
        schema_version=schema_version,
    )


def keep_learned_quality(rows: pa.Table, storage: Storage, floor: float) -> pa.Table:
    """The pair rows whose source image scored at least `floor` by the learned quality model.

    The scores are the `quality_learned` column of the image index (version 3) of each pair's source
    partition (the pair's `partition`: pairs/<recipe>/<date> is made from images/<date>). An image
    without a score (ingested without a quality model) is not known to be good: it is left out, and a
    partition that has no scores at all is a DataError naming the fix."""
    scores: dict[str, float] = {}
    for partition in sorted(set(rows["partition"].to_pylist())):
        try:
            manifest = read_manifest(storage, "images", partition)
        except PartitionNotCommittedError as exc:
            raise DataError(f"data.min_quality needs the source images: {exc}") from None
        index = pq.read_table(io.BytesIO(read_verified(storage, manifest, INDEX_NAME)))
        if "quality_learned" not in index.column_names or index["quality_learned"].null_count == len(index):
            raise DataError(
                f"images/{partition} holds no learned quality scores (ingested without a quality model): "
                "ingest it again with a quality champion registered (ingest.quality_model), or unset "
                "data.min_quality"
            )
        for image, score in zip(
            index["image_id"].to_pylist(), index["quality_learned"].to_pylist(), strict=True
        ):
            if score is not None:
                scores[image] = score
    keep = [scores.get(image, -1.0) >= floor for image in rows["image_id"].to_pylist()]
    return rows.filter(pa.array(keep, type=pa.bool_()))
