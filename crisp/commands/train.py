"""`crisp train`: train a super-resolution model from committed pair partitions (Lightning, DDP-ready).

In: --config PATH (a YAML in training/configs/: sections model, optim, data, trainer) and any number of
--set section.key=value overrides (values parsed as YAML: `--set trainer.max_steps=500`,
`--set data.partitions=[2026-11-20]`). The Crisp settings fill what the YAML leaves out: `data.root`
and `output` (default <root>/runs/sr_train) and the S3 options for both; `train_config_from_settings`
is that merge, shared with `python -m training.train` (and importable for the sr_train DAG).
Out: checkpoints/{last,best}.ckpt, logs/ and result.json under `output`, Lightning's progress bar on
stderr, the TrainResult as JSON on stdout. Exit codes: 0 trained, 2 bad config or data (found before
training starts), 1 the run failed (e.g. a non-finite loss). With trainer.devices > 1 Lightning re-runs
this same command once per extra rank; multi-node runs use torchrun / srun (see training/train.py).

`--release` then runs the release flow on rank 0 (training/release.py, the same steps as the sr_train DAG
and `crisp demo`): the training as an MLflow run, validation under the settings' gate policy
(`gates.sr.*`, `--gate KEY=VALUE` may only tighten it), the report, a new version of `--model-name` as
@challenger and @champion when the registry's policy lets it. Exit 1 when the version is not promoted.
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train an SR model on pairs/<recipe>/<dates> (Lightning, DDP)",
        description="Train a super-resolution model from committed pair partitions; checkpoints go to `output`.",
    )
    # dest differs from the global --config (the settings file), which stays available as `crisp --config`.
    p.add_argument(
        "--config", dest="train_config", metavar="PATH", help="training YAML (training/configs/*.yaml)"
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override (repeatable)",
    )
    p.add_argument("--release", action="store_true", help="then validate, register and promote (rank 0)")
    p.add_argument("--model-name", help="registered model for --release (default crisp-sr-x<scale>)")
    p.add_argument(
        "--gate",
        dest="gates",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a stricter gate threshold than the settings' gates.sr (repeatable, with --release)",
    )
    p.set_defaults(run=run)


def with_s3_options(config, settings):
    """The settings' S3 endpoint/keys for every s3:// URI of `config` that sets no options of its own."""
    options = settings.s3.storage_options()
    data = config.data
    if data.root.startswith("s3://") and not data.storage_options:
        data = data.model_copy(update={"storage_options": options})
    update = {"data": data}
    if config.output.startswith("s3://") and not config.output_storage_options:
        update["output_storage_options"] = options
    return config.model_copy(update=update)


def settings_defaults(settings, run_name: str | None = None) -> dict:
    """What the settings supply to a training config: data.root, output, the MLflow tracking URI."""
    output = f"{settings.root.rstrip('/')}/runs/sr_train"
    return {
        "data": {"root": settings.root},
        "output": f"{output}/{run_name}" if run_name else output,
        "mlflow_tracking_uri": settings.mlflow_tracking_uri,
    }


def train_config_from_settings(path, overrides=(), settings=None, run_name: str | None = None):
    """The TrainConfig of every entry point (`crisp train`, `python -m training.train`, the sr_train DAG).

    settings defaults (`settings_defaults`; `output` = <root>/runs/sr_train[/<run_name>]) < the training
    YAML `path` < `overrides`, then the settings' S3 options for s3:// URIs left without options.
    `settings` defaults to `load_settings()` (CRISP_CONFIG and CRISP_* variables). Raises ConfigError
    (settings) or TrainConfigError (training config)."""
    from crisp.settings import load_settings
    from training.train import load_train_config

    settings = load_settings() if settings is None else settings
    config = load_train_config(path, list(overrides), settings_defaults(settings, run_name))
    return with_s3_options(config, settings)


def run(args: argparse.Namespace) -> int:
    import json
    from dataclasses import asdict

    from lightning.pytorch.utilities.rank_zero import rank_zero_only

    from crisp.settings import ConfigError, load_settings
    from training.data.catalog import DataError
    from training.train import TrainConfigError, train

    settings = load_settings(args.config)
    try:
        policy = _release_policy(args, settings) if args.release else None  # refuse looser gates up front
        config = train_config_from_settings(args.train_config, args.overrides, settings)
        result = train(config)
    except (TrainConfigError, DataError, ValueError) as exc:
        raise ConfigError(str(exc)) from None
    if getattr(rank_zero_only, "rank", 0) != 0:
        return 0
    print(json.dumps(asdict(result), indent=1))
    return _release(args, settings, config, asdict(result), policy) if args.release else 0


def _release_policy(args: argparse.Namespace, settings):
    import yaml

    from training.release import tighten_gates

    pairs = [item.partition("=") for item in args.gates]
    if any(not key or not sep for key, sep, _ in pairs):
        raise ValueError(f"--gate takes KEY=VALUE, got {args.gates}")
    return tighten_gates(settings.gates.sr, {key: yaml.safe_load(value) for key, _, value in pairs})


def _release(args: argparse.Namespace, settings, config, result: dict, policy) -> int:
    import logging

    from pipeline.commit import committed_partitions
    from training.release import ReleaseTarget, release

    storage = settings.storage()
    recipe = config.data.recipe
    partitions = config.data.partitions
    if partitions == "all":
        partitions = committed_partitions(storage, f"pairs/{recipe}")
    target = ReleaseTarget(
        model_name=args.model_name or f"crisp-sr-x{config.model.scale}",
        storage=storage,
        registry=settings.registry(),
        recipe=recipe,
        partitions=list(partitions),
    )
    outcome = release(target, config.model_dump(mode="json"), result, policy, run_name="crisp train")
    line = f"{target.model_name} v{outcome.version}: {outcome.verdict.summary()}"
    if outcome.promoted:
        logging.getLogger(__name__).info("%s; now @champion", line)
        return 0
    logging.getLogger(__name__).warning("%s; not promoted: %s", line, outcome.refusal)
    return 1
