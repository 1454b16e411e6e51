"""`crisp validate CHECKPOINT`: measure a checkpoint and apply the promotion gates (training/gates/validate.py).

In: a checkpoint path/URI, gate options (a YAML file of `GateConfig` fields and/or flags), an optional
champion URI. Out: a gate table on stdout, or the verdict JSON with `--json` (as every command's
`--json`: JSON on stdout instead of the table); `--out FILE` also writes it to a file; exit 0 when every gate
passed, 1 when a gate failed or the checkpoint was rejected, 2 for bad input (no such checkpoint,
bad options, a missing reference set (named by its setting `gates.sr.benchmarks.<name>`), malformed
champion URI). The sets and thresholds default to the settings' policy of `--task` (`gates.sr.*`: Set5
and Set14 pushed to the storage root with `crisp reference push`; `--task restore`: `gates.restore.*`,
the held-out pairs of `--pair-recipe`, scored against the degraded input; `--task sr_gan`: `gates.sr_gan.*`,
also against the L1 twin the checkpoint was fine-tuned from, training/gates/gan_gates.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("validate", help="measure a checkpoint and apply the promotion gates")
    p.add_argument("checkpoint", help="checkpoint path or URI (.ckpt, or .safetensors with a .json sidecar)")
    p.add_argument(
        "--task",
        choices=("sr", "restore", "sr_gan"),
        default="sr",
        help="whose policy: gates.sr, gates.restore or gates.sr_gan",
    )
    p.add_argument("--champion", help="compare with this model: models:/<name>@champion or a checkpoint")
    p.add_argument("--json", action="store_true", help="print the verdict as JSON instead of a table")
    p.add_argument(
        "--out", type=Path, help="also write the verdict JSON to this file (for `registry register`)"
    )
    p.add_argument("--gates", help="YAML file of gate settings (GateConfig fields)")
    p.add_argument("--scale", type=int, help="the scale served; a checkpoint for another scale is rejected")
    p.add_argument("--margin-db", type=float, help="PSNR-Y over bicubic required on every set")
    p.add_argument("--latency-budget-ms", type=float, help="budget for upscaling the reference image")
    p.add_argument("--benchmark", action="append", metavar="NAME=DIR", help="benchmark folder (repeatable)")
    p.add_argument("--pair-recipe", help="also score the test split of pairs/<recipe>")
    p.add_argument("--pair-partition", action="append", metavar="DATE", help="pair partition (repeatable)")
    p.add_argument("--pair-split", help="split of the pair index to score (default test)")
    p.add_argument("--device", help="cpu, cuda or auto")
    p.set_defaults(run=run)


def gate_config(args: argparse.Namespace, policy):
    """GateConfig: the settings' policy (gates.<task>), then --gates YAML, then the flags; ValueError names a
    bad value. Looser thresholds measure fine here: promotion re-applies the policy to the verdict."""
    import yaml
    from pydantic import ValidationError

    template = policy.gate_config()  # GateConfig; GanGateConfig for gates.sr_gan
    data = template.model_dump()
    if args.gates:
        loaded = yaml.safe_load(Path(args.gates).read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"--gates {args.gates} must hold a mapping of GateConfig fields")
        data.update(loaded)
    flags = {
        "scale": args.scale,
        "margin_db": args.margin_db,
        "latency_budget_ms": args.latency_budget_ms,
        "pair_recipe": args.pair_recipe,
        "pair_partitions": args.pair_partition,
        "pair_split": args.pair_split,
        "device": args.device,
    }
    data.update({k: v for k, v in flags.items() if v is not None})
    if args.benchmark:
        pairs = [item.partition("=") for item in args.benchmark]
        if any(not name or not folder for name, _, folder in pairs):
            raise ValueError(f"--benchmark takes NAME=DIR, got {args.benchmark}")
        data["benchmarks"] = {name: folder for name, _, folder in pairs}
    try:
        return type(template).model_validate(data)
    except ValidationError as exc:
        raise ValueError(f"invalid gate settings: {exc}") from None


def run(args: argparse.Namespace) -> int:
    from crisp.settings import load_settings
    from training.gates.safe_load import CheckpointRejected
    from training.gates.validate import exit_code
    from training.registry.versions import UnknownModelError, resolve_champion
    from training.tasks import get_task

    settings = load_settings(args.config)
    try:
        config = gate_config(args, getattr(settings.gates, args.task))
        storage = settings.storage()  # pairs, root-relative reference sets, s3:// checkpoints
        options = storage.options
        champion = resolve_champion(args.champion, settings.registry(args.task), options)
        verdict = get_task(args.task).validate(args.checkpoint, config, champion, storage=storage).verdict
    except (ValueError, OSError, UnknownModelError, CheckpointRejected) as exc:
        print(f"crisp validate: {exc}", file=sys.stderr)
        return 2
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(verdict.model_dump_json(indent=1))
    if args.json:
        print(verdict.model_dump_json(indent=1))
        return exit_code(verdict)
    for gate in verdict.gates:
        measured = "" if gate.measured is None else f"{gate.measured:.4g}"
        print(f"{'PASS' if gate.passed else 'FAIL'}  {gate.gate:<34} {measured:>10}  {gate.detail}")
    baseline = "input" if verdict.meta is not None and verdict.meta.scale == 1 else "bicubic"
    for score in verdict.scores:
        print(f"      {score.name:<34} PSNR-Y {score.psnr_y:.3f} dB ({baseline} {score.bicubic_psnr_y:.3f})")
    print(f"verdict: {'PASSED' if verdict.passed else 'FAILED'}")
    for reason in verdict.reasons:
        print(f"  reason: {reason}", file=sys.stderr)
    return exit_code(verdict)
