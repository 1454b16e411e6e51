"""`crisp demo`: run the whole path on the embedded defaults (see crisp/demo.py)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="run ingest -> pairs -> train -> validate -> promote -> upscale, then the quality and matte models, on a small real catalog",
        description="Serve a small catalog of real photos on 127.0.0.1 (or use --catalog), ingest it, build "
        "x4 pairs, train ESPCN for a few minutes on CPU, validate, register, promote, upscale a sample "
        "and write a report; then build the quality grid, train and release a small quality model and rank "
        "every product's photos with it; then train a small matte model on composites and cut out a held-out "
        "photo. Everything lands under --root.",
    )
    p.add_argument("--root", default="file://./demo-out", help="storage root URI (default file://./demo-out)")
    p.add_argument(
        "--catalog", help="a real catalog feed URI (CSV/JSONL/Parquet) instead of the embedded one"
    )
    p.add_argument("--steps", type=int, default=1000, help="training steps (default 1000, about 3 minutes)")
    p.add_argument(
        "--quality-steps", type=int, default=250, help="quality model training steps (default 250)"
    )
    p.add_argument("--matte-steps", type=int, default=300, help="matte model training steps (default 300)")
    p.add_argument(
        "--allow-host", action="append", default=[], help="extra hosts past the private-address guard"
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from crisp.demo import run_demo

    if min(args.steps, args.quality_steps, args.matte_steps) < 1:
        raise SystemExit("crisp demo: --steps, --quality-steps and --matte-steps must be at least 1")
    result = run_demo(args.root, args.catalog, args.steps, tuple(args.allow_host), args.quality_steps,
                      args.matte_steps)  # fmt: skip
    print()
    print(f"Demo finished in {result.seconds:.0f} s under {result.root}")
    print(f"  images partition : images/{result.partition}  {result.ingest}")
    print(f"  pairs            : {result.pairs}")
    print(f"  checkpoint       : {result.checkpoint}")
    print(f"  registry         : crisp-sr-x4 version {result.version}, @champion = {result.champion}")
    print(f"  upscaled sample  : {result.upscaled}")
    print(f"  report           : {result.report}")
    quality = result.quality
    print(f"  quality model    : crisp-quality version {quality['version']}, @champion = {quality['champion']}"
          f" (val SRCC {quality['srcc']:.3f})")  # fmt: skip
    print(f"  quality report   : {quality['report']}  (the product ranking: contact sheets)")
    if result.matte:
        matte = result.matte
        print(f"  matte model      : crisp-matte version {matte['version']}, @champion = {matte['champion']}"
              f" (held-out IoU {matte['iou']:.3f})")  # fmt: skip
        print(f"  cut-out          : {matte['cutout']}  and on white: {matte['white']}")
    return 0 if result.champion is not None else 1
