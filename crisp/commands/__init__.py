"""One module per `crisp` subcommand: `register(subparsers)` adds it, `args.run(args)` runs it.

`settings_with_root(args)` is the settings of a command that takes `--config` and `--root`; `positive_int` the
argparse type of a count such as `--threads`; `onnx_model_file` the local ONNX file of a `--model` reference
(a file, a model folder, or `models:/...` in a registry) for the data side's commands."""

from __future__ import annotations

import argparse
from typing import Any


def settings_with_root(args: argparse.Namespace) -> Any:
    """The Crisp settings from `--config` (else CRISP_CONFIG / the environment), with `--root` when given."""
    from crisp.settings import load_settings

    settings = load_settings(args.config)
    return settings.model_copy(update={"root": args.root}) if args.root else settings


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return int(text)


def onnx_model_file(reference: str, root: str, tracking_uri: str | None, download_dir: Any) -> Any:
    """The `ModelFile` (local path, source) of `reference`; a registered one (`models:/...`, in the registry at
    `tracking_uri`, else SQLite under `root`) is downloaded into `download_dir`."""
    from pipeline.quality import registry_tracking_uri, resolve_model_file

    registry = registry_tracking_uri(root, tracking_uri) if reference.startswith("models:/") else None
    return resolve_model_file(reference, download_dir, tracking_uri=registry)
