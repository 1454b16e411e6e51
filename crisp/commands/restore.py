"""`crisp restore INPUT... --out DIR [--task denoise|dejpeg|deblur|auto] [--model URI] [--sigma S]
[--jpeg-quality Q]`: clean photos with a restorer, keeping their size.

In: the inputs `crisp upscale` takes (image files, folders searched recursively, `images/<date>`
partitions), decoded by ingest's normalizer; a restorer (a scale-1 model): `--task` picks the champion of
one kind of damage (`models:/crisp-restore-denoise@champion`, training/tasks `RESTORE_KINDS`; `auto`,
the default, is `crisp-restore`, trained on the mixed chain), or `--model` names one
(`models:/<name>/<version>` or a checkpoint path; with a `--task` other than auto, it must have been
trained on that task's recipe). Out: `<out>/<stem>.png` per image at the input's size, streamed band by
band from the tiles (memory bounded by the tile size times the width, as in `crisp upscale`, whose loop
this is). `--sigma` (noise, 8-bit levels) and `--jpeg-quality` tell a restorer trained with damage-level
inputs (training/archs/levels.py) how damaged every input is; without them it runs blind, and a blind-only
model given one is bad input (it would ignore it). A model that reads the JPEG quality and is not given
`--jpeg-quality` is told each JPEG input's own quality, read from the file's quantization tables
(`pipeline.clean.quality.estimate_jpeg_quality`, what ingest records); other inputs leave it unknown.
A file that does not decode is reported on one stderr line while the others finish. Exit 0 when every
image was written, 1 when some failed, 2 for bad input (an upscaler given as the model is bad input: it
would change the size).
"""

from __future__ import annotations

import argparse

from training.tasks import RESTORE_KINDS as KINDS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("restore", help="denoise / de-JPEG / deblur images with a restorer, same size")
    p.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="image file, folder, or images/<date> partition"
    )
    p.add_argument(
        "--task",
        choices=sorted(KINDS),
        help="which kind of damage: the champion of crisp-restore-<task> (default auto: crisp-restore)",
    )
    p.add_argument("--model", help="a scale-1 model URI or checkpoint (default: the --task champion)")
    p.add_argument(
        "--sigma",
        type=_bounded(float, 0, 255),
        help="the inputs' noise sigma in 8-bit levels, for a model with a noise-level input (default: blind)",
    )
    p.add_argument(
        "--jpeg-quality",
        type=_bounded(int, 1, 100),
        help="the inputs' JPEG quality, for a model with a quality input (default: read from each JPEG file)",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--tile", type=int, default=256, help="tile size in pixels (default 256)")
    p.add_argument("--overlap", type=int, default=16, help="tile overlap in pixels (default 16)")
    p.add_argument("--batch-size", type=int, help="tiles per forward pass (default 8 on GPU, 1 on CPU)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    p.set_defaults(run=run)


def _bounded(kind: type, low: float, high: float):
    """An argparse type: `kind(text)` within [low, high], else one usage error."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {kind.__name__}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is outside [{low}, {high}]")
        return value

    return parse


def _refusal(meta, task: str | None) -> str | None:
    """Why `meta` cannot serve `crisp restore --task task`, or None."""
    if meta.scale != 1:
        kind = f"an x{meta.scale} upscaler (use crisp upscale)" if meta.scale else f"a {meta.task} model"
        return f"is {kind}, not a restorer (scale 1)"
    recipe = KINDS[task][0] if task and task != "auto" else None
    if recipe and meta.recipe and meta.recipe != recipe:
        return f"was trained on {meta.recipe}, not on {recipe} (--task {task})"
    return None


def run(args: argparse.Namespace) -> int:
    from crisp.commands.upscale import serve_images

    if args.model is None:
        args.model = f"models:/{KINDS[args.task or 'auto'][1]}@champion"
    given = {name: value for name, value in (("noise_sigma", args.sigma), ("jpeg_quality", args.jpeg_quality))
             if value is not None}  # fmt: skip

    def refuse_ignored_levels(model):
        from training.archs.levels import WithLevels

        WithLevels(model, given)  # ValueError when the model would ignore a given level
        return model

    return serve_images(
        args, "restore", lambda stem, scale: f"{stem}.png", lambda m: _refusal(m, args.task),
        bind=refuse_ignored_levels, per_image=lambda model, data: with_levels(model, given, data),
    )  # fmt: skip


def with_levels(model, given: dict[str, float], data: bytes):
    """`model` told the `given` levels and, when it reads the JPEG quality and none is given, the quality
    of `data` if it is a JPEG whose tables say one; `model` itself when there is nothing to tell."""
    from pipeline.clean.quality import estimate_jpeg_quality
    from training.archs.levels import WithLevels

    levels = dict(given)
    if "jpeg_quality" in getattr(model, "levels", ()) and "jpeg_quality" not in levels:
        quality = estimate_jpeg_quality(data)  # None for any other format, or unreadable tables
        if quality is not None:
            levels["jpeg_quality"] = quality
    return WithLevels(model, levels) if levels else model
