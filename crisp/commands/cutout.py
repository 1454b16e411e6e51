"""`crisp cutout INPUT... --out DIR [--model URI] [--background B] [--fill F] [--shadow] [--threads N]`.

In: the inputs `crisp upscale` takes (image files, folders searched recursively, `images/<date>`
partitions), decoded by ingest's normalizer (EXIF orientation, ICC -> sRGB); a matte model (`--model`:
`models:/<name>@<alias>`, `models:/<name>/<version>`, a `.onnx` file or an MLflow model folder; default
`models:/crisp-matte@champion` in the settings' MLflow store), run by pipeline/matte/predict.py (ONNX
Runtime on the CPU at the model's canvas, the matte brought to full resolution with the guided filter;
torch is never imported). Out, per image: `<out>/<stem>.png`, RGBA at the photo's size whose alpha is the
predicted matte (pipeline/matte/cutout.py `cutout_rgba`), and with `--background` other than
`transparent` (white, #RRGGBB or an image file) `<out>/<stem>_on_<name>.png`: the product centred at
`--fill` of the frame on that background, `--shadow` casting a soft drop shadow. A file that does not
decode is one stderr line while the others finish; exit 0 when every image was written, 1 when some
failed, 2 for a bad invocation (an unknown model, a bad background, no images), one line, no traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_MODEL = "models:/crisp-matte@champion"


def _fill(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in (0, 1], got {text!r}")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    from crisp.commands import positive_int

    p = sub.add_parser("cutout", help="cut products out of photos with the matte model (RGBA PNGs, renders)")
    p.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="image file, folder, or images/<date> partition"
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"matte model (default {DEFAULT_MODEL})")
    p.add_argument("--background", default="transparent",
                   help="transparent (default: the RGBA only), white, #RRGGBB or an image file")  # fmt: skip
    p.add_argument("--fill", type=_fill, default=0.85, help="product extent over the frame (default 0.85)")
    p.add_argument("--shadow", action="store_true", help="cast a soft drop shadow on the background")
    p.add_argument("--threads", type=positive_int, default=1, help="onnxruntime threads (default 1)")
    p.add_argument("--root", help="storage root URI (default: `root` from the settings / CRISP_ROOT)")
    p.set_defaults(run=run)


def cut_out_items(items, predictor, out_dir: Path, background, fill: float, shadow: bool) -> int:
    """Write `<stem>.png` (RGBA) and, with a background, `<stem>_on_<name>.png` for every (stem, load) item;
    a file that fails is one stderr line and the others go on. Returns how many failed."""
    import numpy as np
    from PIL import Image

    from crisp.commands.upscale import decode_input
    from pipeline.matte.cutout import cutout_rgba, foreground, render
    from schemas.errors import CrispError

    out_dir.mkdir(parents=True, exist_ok=True)
    failed = 0
    for stem, load in items:
        try:
            photo = np.asarray(decode_input(load()))
            alpha = predictor.alpha(photo)
            colours = foreground(photo, alpha)
            Image.fromarray(cutout_rgba(photo, alpha, colours), mode="RGBA").save(out_dir / f"{stem}.png")
            if background is not None:
                rendered = render(photo, alpha, background, fill, shadow, colours)
                Image.fromarray(rendered).save(out_dir / f"{stem}_on_{background.name}.png")
        except (OSError, ValueError, CrispError) as exc:  # unreadable or undecodable: report, go on
            failed += 1
            sys.stderr.write(f"crisp cutout: {stem}: {exc}\n")
            continue
        log.info(
            "%s: %dx%d, product fill %.2f", stem, photo.shape[1], photo.shape[0], float((alpha >= 0.5).mean())
        )
    log.info("cut out %d of %d images into %s", len(items) - failed, len(items), out_dir)
    return failed


def run(args: argparse.Namespace) -> int:
    import os
    import tempfile

    from crisp.commands import onnx_model_file, settings_with_root
    from crisp.commands.upscale import collect_inputs
    from pipeline.matte.cutout import parse_background
    from pipeline.matte.predict import MattePredictor
    from schemas.errors import InputError

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    settings = settings_with_root(args)
    background = parse_background(args.background)
    try:
        items = collect_inputs(args.inputs, settings.storage)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    if not items:
        raise InputError("no images found in the inputs")
    with tempfile.TemporaryDirectory(prefix="crisp-cutout-") as download_dir:
        model = onnx_model_file(args.model, settings.root, settings.mlflow_tracking_uri, Path(download_dir))
        predictor, source = MattePredictor(model.path, threads=args.threads), model.source
    log.info("cutting out %d images with %s (canvas %d px)", len(items), source, predictor.canvas_long_side)
    failed = cut_out_items(items, predictor, Path(args.out), background, args.fill, args.shadow)
    return 1 if failed else 0
