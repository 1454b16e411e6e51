"""`crisp train`: train a super-resolution model from committed pair partitions (Lightning, DDP-ready).

In: --config PATH (a YAML in training/configs/: sections model, optim, data, trainer) and any number of
--set section.key=value overrides (values parsed as YAML: `--set trainer.max_steps=500`,
`--set data.partitions=[2026-11-20]`). The Crisp settings fill what the YAML leaves out: `data.root`
and `output` (default <root>/runs/sr_train) and the S3 options for both. Out: checkpoints/{last,best}.ckpt,
logs/ and result.json under `output`, Lightning's progress bar on stderr, the TrainResult as JSON on
stdout. Exit codes: 0 trained, 2 bad config or data (found before training starts), 1 the run failed
(e.g. a non-finite loss). With trainer.devices > 1 Lightning re-runs this same command once per extra
rank; multi-node runs use torchrun / srun (see training/train.py).
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


def run(args: argparse.Namespace) -> int:
    import json
    from dataclasses import asdict

    from lightning.pytorch.utilities.rank_zero import rank_zero_only

    from crisp.settings import ConfigError, load_settings
    from training.data.catalog import DataError
    from training.train import TrainConfigError, load_train_config, train

    settings = load_settings(args.config)
    defaults = {
        "data": {"root": settings.root},
        "output": f"{settings.root.rstrip('/')}/runs/sr_train",
        "mlflow_tracking_uri": settings.mlflow_tracking_uri,
    }
    try:
        config = with_s3_options(load_train_config(args.train_config, args.overrides, defaults), settings)
        result = train(config)
    except (TrainConfigError, DataError) as exc:
        raise ConfigError(str(exc)) from None
    if getattr(rank_zero_only, "rank", 0) == 0:
        print(json.dumps(asdict(result), indent=1))
    return 0
