"""`crisp restore INPUT... --out DIR [--model URI]`: clean photos with a restorer, keeping their size.

In: the inputs `crisp upscale` takes (image files, folders searched recursively, `images/<date>`
partitions), decoded by ingest's normalizer; a restorer (a scale-1 model: `models:/crisp-restore@champion`
by default, `models:/<name>/<version>` or a checkpoint path). Out: `<out>/<stem>.png` per image at the
input's size, streamed band by band from the tiles (memory bounded by the tile size times the width, as
in `crisp upscale`, whose loop this is). A file that does not decode is reported on one stderr line while
the others finish. Exit 0 when every image was written, 1 when some failed, 2 for bad input (an
upscaler given as the model is bad input: it would change the size).
"""

from __future__ import annotations

import argparse

DEFAULT_MODEL = "models:/crisp-restore@champion"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("restore", help="denoise / de-JPEG / deblur images with a restorer, same size")
    p.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="image file, folder, or images/<date> partition"
    )
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"a scale-1 model (default {DEFAULT_MODEL})")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--tile", type=int, default=256, help="tile size in pixels (default 256)")
    p.add_argument("--overlap", type=int, default=16, help="tile overlap in pixels (default 16)")
    p.add_argument("--batch-size", type=int, help="tiles per forward pass (default 8 on GPU, 1 on CPU)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    p.set_defaults(run=run)


def _not_a_restorer(meta) -> str | None:
    if meta.scale == 1:
        return None
    kind = f"an x{meta.scale} upscaler (use crisp upscale)" if meta.scale else f"a {meta.task} model"
    return f"is {kind}, not a restorer (scale 1)"


def run(args: argparse.Namespace) -> int:
    from crisp.commands.upscale import serve_images

    return serve_images(args, "restore", lambda stem, scale: f"{stem}.png", _not_a_restorer)
