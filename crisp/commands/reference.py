"""`crisp reference push DIR --name NAME | list`: reference image sets on the storage root.

In: a local folder of images and a set name (`push`), or nothing (`list`). The storage root and S3
options come from the settings. Out: `push` copies the images to `<root>/reference/<NAME>/` with a
manifest written last (pipeline/reference_sets.py) and prints where, so the gates' default sets
(`gates.sr.benchmarks`: `reference/Set5`, `reference/Set14`) resolve on any machine that has the root;
`list` prints the pushed sets (`--json` for JSON). Exit 0, or 2 with one line for a bad folder or name.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reference", help="push or list reference image sets (gate benchmarks) on the root")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    push = actions.add_parser("push", help="copy a folder of reference images onto the storage root")
    push.add_argument("folder", type=Path)
    push.add_argument("--name", help="set name (default: the folder's name, e.g. Set5)")
    listing = actions.add_parser("list", help="the reference sets on the storage root")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import json

    from crisp.settings import load_settings
    from pipeline.reference_sets import ReferenceSetError, list_sets, push

    storage = load_settings(args.config).storage()
    if args.action == "push":
        try:
            manifest = push(storage, args.name or args.folder.resolve().name, args.folder)
        except ReferenceSetError as exc:
            print(f"crisp reference: {exc}", file=sys.stderr)
            return 2
        print(f"{manifest.name}: {len(manifest.files)} images -> {storage.uri(f'reference/{manifest.name}')}")
        return 0
    sets = list_sets(storage)
    if args.json:
        print(json.dumps([s.model_dump() for s in sets], indent=1))
        return 0
    for s in sets:
        print(f"{s.name:<16} {len(s.files):>5} images  {s.digest[:12]}  {s.created_at}")
    return 0
