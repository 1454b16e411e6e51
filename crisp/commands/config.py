"""`crisp config`: print the effective settings (defaults < YAML < CRISP_* env) with secrets masked."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="print the effective settings, secrets masked")
    p.add_argument("--format", choices=("yaml", "json"), default="yaml")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import json

    import yaml

    from crisp.settings import load_settings, masked_dump

    data = masked_dump(load_settings(args.config))
    if args.format == "json":
        print(json.dumps(data, indent=2))
    else:
        print(yaml.safe_dump(data, sort_keys=False), end="")
    return 0
