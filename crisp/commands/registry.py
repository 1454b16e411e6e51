"""`crisp registry list|register|promote|rollback`: the MLflow Model Registry (training/registry/versions.py).

In: a registered-model name (and a version, or a checkpoint plus its verdict JSON). The store comes from
the settings: `mlflow_tracking_uri`, else SQLite under the storage root; promotion re-applies the settings'
gate policy (`gates.sr.*`) to the version's recorded verdict. `promote --force --reason "..."` is a
person's override, recorded on the version (who, when, why). Out: a table (or `--json`) for
`list`; exit 0 on success, 1 when a promotion or rollback is refused (with the reason), 2 for an unknown
model/version or bad input.
"""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("registry", help="list, register, promote or roll back registered models")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="versions of a model with aliases, verdict and metrics")
    listing.add_argument("name")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    reg = actions.add_parser("register", help="register a checkpoint with its verdict as @challenger")
    reg.add_argument("checkpoint")
    reg.add_argument("--verdict", required=True, help="verdict JSON written by `crisp validate --out FILE`")
    reg.add_argument("--name", required=True)
    promote = actions.add_parser(
        "promote",
        help="move @champion to VERSION (only when its verdict passes the settings' gates.sr policy)",
    )
    promote.add_argument("name")
    promote.add_argument("version", type=int)
    promote.add_argument("--force", action="store_true", help="override the gates (a person's decision)")
    promote.add_argument("--reason", help="why the gates are overridden (required with --force; recorded)")
    rollback = actions.add_parser("rollback", help="restore the previous @champion")
    rollback.add_argument("name")
    p.set_defaults(run=run)


def _list(args: argparse.Namespace, config) -> int:
    import json

    from training.registry.versions import list_versions

    versions = list_versions(args.name, config)
    if args.json:
        print(json.dumps([v.model_dump() for v in versions], indent=1))
        return 0
    print(f"{'version':>7}  {'aliases':<22} {'verdict':<8} {'arch':<14} scale  metrics")
    for v in versions:
        verdict = "-" if v.passed is None else "passed" if v.passed else "failed"
        metrics = ", ".join(f"{k}={val:.3f}" for k, val in sorted(v.metrics.items()) if k.endswith(".psnr_y"))
        print(
            f"{v.version:>7}  {','.join(v.aliases) or '-':<22} {verdict:<8} {v.arch or '-':<14} "
            f"{v.scale or '-':>5}  {metrics}"
        )
    return 0


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from crisp.settings import load_settings
    from training.gates.safe_load import CheckpointRejected
    from training.gates.verdict import Verdict
    from training.registry import versions as registry

    settings = load_settings(args.config)
    config = settings.registry()
    if args.action == "promote" and args.force and not (args.reason or "").strip():
        print("crisp registry: --force needs --reason saying why the gates are overridden", file=sys.stderr)
        return 2
    try:
        if args.action == "list":
            return _list(args, config)
        if args.action == "register":
            verdict = Verdict.model_validate_json(Path(args.verdict).read_text())
            options = settings.s3.storage_options() if args.checkpoint.startswith("s3://") else None
            version = registry.register(
                args.checkpoint, verdict, args.name, config=config, storage_options=options
            )
            print(
                f"registered {args.name} v{version} as @{registry.CHALLENGER} "
                f"(verdict passed: {verdict.passed})"
            )
        elif args.action == "promote":
            reason = args.reason if args.force else None
            previous = registry.promote(args.name, args.version, config, force_reason=reason)
            print(f"{args.name}@{registry.CHAMPION} -> v{args.version} (previous: {previous or 'none'})")
        else:
            restored = registry.rollback(args.name, config)
            print(f"{args.name}@{registry.CHAMPION} rolled back to v{restored}")
    except (registry.PromotionRefused, CheckpointRejected) as exc:
        print(f"crisp registry: refused: {exc}", file=sys.stderr)
        return 1
    except (registry.UnknownModelError, ValueError, OSError) as exc:
        print(f"crisp registry: {exc}", file=sys.stderr)
        return 2
    return 0
