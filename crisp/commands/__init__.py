"""One module per `crisp` subcommand: `register(subparsers)` adds it, `args.run(args)` runs it.

`settings_with_root(args)` is the settings of a command that takes `--config` and `--root`."""

from __future__ import annotations

import argparse
from typing import Any


def settings_with_root(args: argparse.Namespace) -> Any:
    """The Crisp settings from `--config` (else CRISP_CONFIG / the environment), with `--root` when given."""
    from crisp.settings import load_settings

    settings = load_settings(args.config)
    return settings.model_copy(update={"root": args.root}) if args.root else settings
