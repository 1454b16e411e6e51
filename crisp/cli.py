"""The `crisp` command line: one subcommand per stage, each in `crisp/commands/<name>.py`.

In: argv. Out: exit code 0 on success, 2 for bad input or configuration, 1 for a failed or refused
stage; every expected error (a `schemas.errors.CrispError`) is one line on stderr, mapped to its exit
code here, in one place. Subcommand modules import their heavy dependencies only when run, so
`crisp --help` stays fast. Global flags: `--version` (`crisp <version>`), `-v` (Crisp's own logs at DEBUG;
`-vv` every library's too) and `-q` (warnings and errors only); logs go to stderr, INFO by default.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

COMMANDS = (
    "ingest",
    "pairs",
    "train",
    "validate",
    "registry",
    "reference",
    "upscale",
    "restore",
    "cutout",
    "quality",
    "demo",
    "config",
    "data_docs",
)
PACKAGES = ("crisp", "pipeline", "training", "schemas")  # the loggers -v turns to DEBUG
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("crisp")
    except PackageNotFoundError:  # a bare checkout, not installed
        return "unknown"


class _StderrHandler(logging.StreamHandler):
    """A StreamHandler on whatever sys.stderr is when a record is written (tests swap it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def configure_logging(verbose: int = 0, quiet: bool = False) -> None:
    """One stderr handler on the root logger (added once), INFO; -v: Crisp DEBUG, -vv: all DEBUG; -q: WARNING."""
    root = logging.getLogger()
    if not any(isinstance(h, _StderrHandler) for h in root.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter(LOG_FORMAT, datefmt="%H:%M:%S"))
        root.addHandler(handler)
    if quiet:
        root_level, own_level = logging.WARNING, logging.WARNING
    else:
        own_level = logging.DEBUG if verbose else logging.INFO
        # other libraries: warnings only by default (Lightning prints its own INFO lines), more with -v/-vv
        root_level = logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING
    root.setLevel(root_level)
    for name in PACKAGES:
        logging.getLogger(name).setLevel(own_level)
    # distributed sets its own loggers to INFO when it is imported (dask config `logging.distributed`):
    # a LocalCluster's start and stop would print dozens of lines, and a closing comm's traceback
    distributed_level = logging.getLevelName(root_level).lower()
    os.environ["DASK_LOGGING__DISTRIBUTED"] = distributed_level
    if "distributed" in sys.modules:
        logging.getLogger("distributed").setLevel(root_level)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crisp",
        description="Crisp: crawl, clean and shard product images; build SR pairs; train, gate and serve models.",
    )
    parser.add_argument("--config", help="YAML settings file (also CRISP_CONFIG); env CRISP_* overrides it")
    parser.add_argument("--version", action="version", version=f"crisp {version()}")
    noise = parser.add_mutually_exclusive_group()
    noise.add_argument(
        "-v", "--verbose", action="count", default=0, help="debug logs (Crisp's; -vv: every library's too)"
    )
    noise.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors on stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        module = importlib.import_module(f"crisp.commands.{name}")
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from schemas.errors import CrispError

    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose, args.quiet)
    try:
        return int(args.run(args) or 0)
    except CrispError as exc:  # every expected error: one line, its kind's exit code (schemas/errors.py)
        print(f"crisp: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("crisp: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
