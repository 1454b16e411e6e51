"""Run one `crisp` subcommand module in-process: its parser (with the global --config) and its `run`.

In: a module of crisp/commands and the argv after `crisp` (the subcommand name first). Out: the exit code."""

from __future__ import annotations

import argparse
from types import ModuleType


def run_command(module: ModuleType, *argv: str) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config")
    module.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return args.run(args)
