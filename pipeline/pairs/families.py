"""Sample families: what the samples stage (pipeline/pairs/job.py) needs to know about one kind of sample.

In: a recipe name (`bicubic_x4`, `realworld_x4`, ..., `quality_grid`, `matte_composites` or
`synthetic_clips_x4`). Out: its `SampleFamily`: the
per-shard function the Dask tasks map, the index and skip schemas, the manifest count key, the part of the
content key that comes from the config, and the Great Expectations gate. Every family shares the job's
planning, Dask mapping, retries, progress, commit protocol and dataset layout (`pairs/<recipe>/<date>/`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from pipeline.pairs.config import MATTE_COMPOSITES, QUALITY_GRID, SYNTHETIC_CLIPS, PairsConfig
from schemas.clip_samples import CLIP_SAMPLE_SCHEMA
from schemas.matte_samples import MATTE_SAMPLE_SCHEMA
from schemas.pairs import PAIR_INDEX_SCHEMA, PAIR_SKIP_SCHEMA
from schemas.quality_samples import QUALITY_SAMPLE_SCHEMA


@dataclass(frozen=True)
class SampleFamily:
    name: str
    make: Callable[..., Any]  # (root, options, InputShard, rows, name, PairsConfig, out_dir) -> ShardOutput
    index_schema: pa.Schema
    skip_schema: pa.Schema
    count: str  # the manifest count of index rows ("pairs", "samples")
    config_key: Callable[[PairsConfig], dict[str, Any]]  # the config's part of the content key
    check: Callable[
        [pa.Table, pa.Table, str, PairsConfig, int], None
    ]  # (index, skips, partition, config, rows)


def family(name: str) -> SampleFamily:
    """The family of recipe `name` (PairsConfig has already rejected unknown names)."""
    if name == QUALITY_GRID:
        return _quality_grid()
    if name == SYNTHETIC_CLIPS:
        return _synthetic_clips()
    return _matte_composites() if name == MATTE_COMPOSITES else _sr_pairs(name)


def _sr_pairs(recipe: str) -> SampleFamily:
    from pipeline.pairs.checks import PairExpectations, check_pairs
    from pipeline.pairs.make import make_pairs_for_shard

    def check(index: pa.Table, skips: pa.Table, partition: str, config: PairsConfig, rows: int) -> None:
        expect = PairExpectations(
            recipe=recipe,
            scale=config.recipe(recipe).scale,
            partition=partition,
            min_tile=config.min_tile,
            hr_tile=config.hr_tile,
            rows=rows,
        )
        check_pairs(index, skips, expect)

    return SampleFamily(
        name=recipe,
        make=make_pairs_for_shard,
        index_schema=PAIR_INDEX_SCHEMA,
        skip_schema=PAIR_SKIP_SCHEMA,
        count="pairs",
        config_key=lambda config: {"recipe": config.recipe(recipe).describe(), "config": config.output_key()},
        check=check,
    )


def _non_pair_family(name: str, version: int, section: str, make: Callable[..., Any], schema: pa.Schema,
                     check: Callable[..., None]) -> SampleFamily:  # fmt: skip
    """A family configured by its own `PairsConfig` section: that section, the family's version and the
    shard settings are its part of the content key."""

    def config_key(config: PairsConfig) -> dict[str, Any]:
        own = getattr(config, section).model_dump(mode="json")
        return {
            "recipe": {"name": name, "version": version, "config": own},
            "config": config.model_dump(mode="json", include={"shard_target_bytes", "png_compress_level"}),
        }

    return SampleFamily(name=name, make=make, index_schema=schema, skip_schema=PAIR_SKIP_SCHEMA, count="samples",
                        config_key=config_key, check=check)  # fmt: skip


def _quality_grid() -> SampleFamily:
    from pipeline.pairs.checks import check_quality_samples
    from pipeline.pairs.grid import GRID_VERSION, make_quality_grid_for_shard

    return _non_pair_family(QUALITY_GRID, GRID_VERSION, "quality_grid", make_quality_grid_for_shard,
                            QUALITY_SAMPLE_SCHEMA, check_quality_samples)  # fmt: skip


def _matte_composites() -> SampleFamily:
    from pipeline.matte import COMPOSITE_VERSION
    from pipeline.pairs.checks import check_matte_samples
    from pipeline.pairs.composites import make_composites_for_shard

    return _non_pair_family(MATTE_COMPOSITES, COMPOSITE_VERSION, "matte", make_composites_for_shard,
                            MATTE_SAMPLE_SCHEMA, check_matte_samples)  # fmt: skip


def _synthetic_clips() -> SampleFamily:
    from pipeline.pairs.checks import check_clip_samples
    from pipeline.pairs.clips import make_clips_for_shard
    from pipeline.video.clips import CLIPS_VERSION

    return _non_pair_family(SYNTHETIC_CLIPS, CLIPS_VERSION, "clips", make_clips_for_shard, CLIP_SAMPLE_SCHEMA,
                            check_clip_samples)  # fmt: skip
