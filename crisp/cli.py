"""The `crisp` command line: one subcommand per stage, each in `crisp/commands/<name>.py`.

In: argv. Out: exit code 0 on success, 2 for bad input or configuration (with a one-line reason on
stderr), 1 for a failed stage. Subcommand modules import their heavy dependencies only when run, so
`crisp --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = ("ingest", "pairs", "train", "validate", "registry", "upscale", "demo", "config")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crisp",
        description="Crisp: crawl, clean and shard product images; build SR pairs; train, gate and serve models.",
    )
    parser.add_argument("--config", help="YAML settings file (also CRISP_CONFIG); env CRISP_* overrides it")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        module = importlib.import_module(f"crisp.commands.{name}")
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from crisp.settings import ConfigError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except ConfigError as exc:
        print(f"crisp: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("crisp: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
