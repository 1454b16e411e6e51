"""Gate a pairs partition with Great Expectations before it is committed.

In: the pair index and skip tables (conformed to `schemas.pairs`), and what the job expects (recipe,
scale, partition, tile bounds, row count). Out: nothing when every expectation passes, else
`schemas.expectations.GateError` listing each failed expectation (table, expectation, what was seen).

The suites are built from the declared schemas with `schemas.expectations.suite_from_schema` (exact
column set, non-null required columns), plus what a schema cannot say: unique pair ids without '.',
one recipe / scale / partition per partition, tile sizes within the tile bounds and HR = LR x scale,
non-empty members after the first tar header, labels in range (PSNR in [0, 100] dB, capped for identical tiles;
SSIM in [-1, 1]; score in [0, 5]; known classes), severity components in range, as many index rows as
the workers returned, and skip reasons that are `Reason` codes. The quality grid (`check_quality_samples`)
has its own suite: the sample schema, known families and levels, targets in [0, 5], one complete grid per
reference with a pristine member at 5 and targets that never rise with the level; so do the matte
composites (`check_matte_samples`): the sample schema, known background kinds, the configured side,
confidences and alpha means in [0, 1], `matte.variants` composites per photo; and the synthetic clips
(`check_clip_samples`): the clip schema, the configured frames / side / scale, at most `clips.variants`
clips per photo. GX is imported only when a gate runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from pipeline.degrade.labels import QUALITY_CLASSES
from pipeline.sr_metrics import PSNR_CAP_DB
from schemas.clip_samples import CLIP_SAMPLE_SCHEMA
from schemas.clip_samples import MEMBERS as CLIP_MEMBERS
from schemas.expectations import GateError, suite_failures, suite_from_schema
from schemas.image_index import SPLIT_VALUES
from schemas.matte_samples import MATTE_SAMPLE_SCHEMA, MEMBERS
from schemas.pairs import PAIR_INDEX_SCHEMA, PAIR_SKIP_SCHEMA
from schemas.quality_samples import PRISTINE, QUALITY_SAMPLE_SCHEMA
from schemas.reasons import Reason

_TAR_HEADER = 512  # a member's data starts after at least one tar header


@dataclass(frozen=True)
class PairExpectations:
    recipe: str
    scale: int
    partition: str
    min_tile: int
    hr_tile: int
    rows: int


def pair_index_suite(expect: PairExpectations):
    """Expectations on `index.parquet` of `pairs/<recipe>/<partition>`."""
    import great_expectations.expectations as gxe

    suite = suite_from_schema(
        PAIR_INDEX_SCHEMA,
        f"pair_index.{expect.recipe}",
        unique=("pair_id",),
        value_sets={
            "recipe": [expect.recipe],
            "scale": [expect.scale],
            "partition": [expect.partition],
            "source_partition": [expect.partition],
            "split": list(SPLIT_VALUES),
            "quality_class": list(QUALITY_CLASSES),
        },
        bounds={
            # an evenly split axis gives tiles of at least half a tile (pipeline.degrade.tiles)
            "hr_width": (min(expect.min_tile, expect.hr_tile // 2), expect.hr_tile),
            "hr_height": (min(expect.min_tile, expect.hr_tile // 2), expect.hr_tile),
            "tile_y": (0, None),
            "tile_x": (0, None),
            "hr_offset": (_TAR_HEADER, None),
            "lr_offset": (_TAR_HEADER, None),
            "hr_size": (1, None),
            "lr_size": (1, None),
            "psnr_y": (0, PSNR_CAP_DB),
            "ssim_y": (-1, 1),
            "quality_score": (0, 5),
            "blur_sigma": (0, None),
            "noise_sigma": (0, None),
            "jpeg_quality": (1, 100),
        },
    )
    suite.add_expectation(gxe.ExpectTableRowCountToEqual(value=expect.rows))
    suite.add_expectation(gxe.ExpectColumnValuesToMatchRegex(column="pair_id", regex=r"^[^./]+_\d+_\d+_\d+$"))
    return suite


def alignment_suite():
    """HR tile = LR tile x scale on both axes (checked on a derived frame, see `check_pairs`)."""
    import great_expectations as gx
    import great_expectations.expectations as gxe

    suite = gx.ExpectationSuite(name="pair_alignment")
    for axis in ("width", "height"):
        suite.add_expectation(
            gxe.ExpectColumnPairValuesToBeEqual(column_A=f"hr_{axis}", column_B=f"lr_{axis}_x_scale")
        )
    return suite


def pair_skip_suite():
    """Expectations on `skips.parquet`: known reason codes."""
    return suite_from_schema(PAIR_SKIP_SCHEMA, "pair_skips", value_sets={"reason": [r.value for r in Reason]})


def check_pairs(index: pa.Table, skips: pa.Table, expect: PairExpectations) -> None:
    """Run the pair suites; raise GateError listing every failure (nothing is committed then)."""
    frame = index.to_pandas()
    aligned = frame[["hr_width", "hr_height"]].assign(
        lr_width_x_scale=frame["lr_width"] * expect.scale, lr_height_x_scale=frame["lr_height"] * expect.scale
    )
    failures = suite_failures("pair_index", frame, pair_index_suite(expect))
    failures += suite_failures("pair_alignment", aligned, alignment_suite())
    failures += suite_failures("pair_skips", skips.to_pandas(), pair_skip_suite())
    if failures:
        raise GateError([f"pairs/{expect.recipe}/{expect.partition} {f}" for f in failures])


def quality_sample_suite(partition: str, config, rows: int):
    """Expectations on `index.parquet` of `pairs/quality_grid/<partition>`."""
    import great_expectations.expectations as gxe

    from pipeline.distort import LEVELS

    grid = config.quality_grid
    suite = suite_from_schema(
        QUALITY_SAMPLE_SCHEMA,
        "quality_samples",
        unique=("sample_id",),
        value_sets={
            "recipe": ["quality_grid"],
            "partition": [partition],
            "source_partition": [partition],
            "split": list(SPLIT_VALUES),
            "family": [PRISTINE, *grid.family_names()],
            "canvas_long_side": [grid.canvas_long_side],
        },
        bounds={
            "level": (0, LEVELS),
            "target": (0, 5),
            "ssim_y": (-1, 1),
            "colour_fidelity": (0, 1),
            "fr": (-1, 1),
            "width": (1, grid.canvas_long_side),
            "height": (1, grid.canvas_long_side),
            "offset": (_TAR_HEADER, None),
            "size": (1, None),
        },
    )
    suite.add_expectation(gxe.ExpectTableRowCountToEqual(value=rows))
    return suite


def check_quality_samples(index: pa.Table, skips: pa.Table, partition: str, config, rows: int) -> None:
    """Run the quality-sample suites, plus one grid per reference (pristine at 5, every family at every
    level, a target that never rises with the level): GateError lists every failure."""
    from pipeline.distort import LEVELS

    frame = index.to_pandas()
    failures = suite_failures("quality_samples", frame, quality_sample_suite(partition, config, rows))
    failures += suite_failures("pair_skips", skips.to_pandas(), pair_skip_suite())
    expected = 1 + LEVELS * len(config.quality_grid.family_names())
    sizes = frame.groupby("group_id").size()
    for group in sizes[sizes != expected].index[:5]:
        failures.append(f"quality_samples: group {group} has {sizes[group]} samples, expected {expected}")
    pristine = frame[frame["level"] == 0]
    if len(pristine) != len(sizes) or not (pristine["target"] == 5.0).all():
        failures.append("quality_samples: every group needs exactly one pristine sample with target 5")
    graded = frame[frame["level"] > 0].sort_values(["group_id", "family", "level"])
    rises = graded.groupby(["group_id", "family"])["target"].diff() > 0
    if rises.any():
        failures.append(f"quality_samples: {int(rises.sum())} target(s) rise with the level")
    if failures:
        raise GateError([f"pairs/quality_grid/{partition} {f}" for f in failures])


def check_matte_samples(index: pa.Table, skips: pa.Table, partition: str, config, rows: int) -> None:
    """Run the matte-sample suites, plus `matte.variants` composites per photo: GateError lists every failure."""
    import great_expectations.expectations as gxe

    from pipeline.matte.composite import COMPOSITES, KINDS

    matte = config.matte
    suite = suite_from_schema(
        MATTE_SAMPLE_SCHEMA,
        "matte_samples",
        unique=("sample_id",),
        value_sets={
            "recipe": [COMPOSITES],
            "partition": [partition],
            "source_partition": [partition],
            "split": list(SPLIT_VALUES),
            "background": list(KINDS),
            "side": [matte.side],
        },  # fmt: skip
        bounds={
            "variant": (0, matte.variants - 1),
            "matte_confidence": (0, 1),
            "alpha_mean": (0, 1),
            **{f"{m}_offset": (_TAR_HEADER, None) for m in MEMBERS},
            **{f"{m}_size": (1, None) for m in MEMBERS},
        },
    )
    suite.add_expectation(gxe.ExpectTableRowCountToEqual(value=rows))
    frame = index.to_pandas()
    failures = suite_failures("matte_samples", frame, suite)
    failures += suite_failures("pair_skips", skips.to_pandas(), pair_skip_suite())
    sizes = frame.groupby("image_id").size()
    for image in sizes[sizes != matte.variants].index[:5]:
        failures.append(
            f"matte_samples: image {image} has {sizes[image]} composites, expected {matte.variants}"
        )
    if failures:
        raise GateError([f"pairs/{COMPOSITES}/{partition} {f}" for f in failures])


def check_clip_samples(index: pa.Table, skips: pa.Table, partition: str, config, rows: int) -> None:
    """Run the clip-sample suites, plus at most `clips.variants` clips per photo: GateError lists every
    failure."""
    import great_expectations.expectations as gxe

    from pipeline.video.clips import CLIPS, SCALE

    clips = config.clips
    suite = suite_from_schema(
        CLIP_SAMPLE_SCHEMA,
        "clip_samples",
        unique=("sample_id",),
        value_sets={
            "recipe": [CLIPS],
            "partition": [partition],
            "source_partition": [partition],
            "split": list(SPLIT_VALUES),
            "frames": [clips.frames],
            "side": [clips.side],
            "scale": [SCALE],
        },  # fmt: skip
        bounds={
            "variant": (0, clips.variants - 1),
            "motion_lr": (0, None),
            **{f"{m}_offset": (_TAR_HEADER, None) for m in CLIP_MEMBERS},
            **{f"{m}_size": (1, None) for m in CLIP_MEMBERS},
        },
    )
    suite.add_expectation(gxe.ExpectTableRowCountToEqual(value=rows))
    frame = index.to_pandas()
    failures = suite_failures("clip_samples", frame, suite)
    failures += suite_failures("pair_skips", skips.to_pandas(), pair_skip_suite())
    sizes = frame.groupby("image_id").size()
    for image in sizes[sizes > clips.variants].index[:5]:
        failures.append(f"clip_samples: image {image} has {sizes[image]} clips, at most {clips.variants}")
    if failures:
        raise GateError([f"pairs/{CLIPS}/{partition} {f}" for f in failures])
