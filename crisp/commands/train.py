"""`crisp train`: train a model of any task (`sr`, `quality`, `restore`, `sr_gan`) from committed sample
partitions (Lightning, DDP-ready).

In: --config PATH (a YAML in training/configs/: sections task, model, optim, data, trainer) and/or --task
NAME (without --config: the task's default YAML, `DEFAULT_CONFIGS`), and any number of --set
section.key=value overrides (values parsed as YAML: `--set trainer.max_steps=500`,
`--set data.partitions=[2026-11-20]`). The Crisp settings fill what the YAML leaves out: `data.root`,
`output` (default <root>/runs/<task>_train), the MLflow tracking URI and experiment (crisp-<task>) and the
S3 options; `train_config_from_settings` is that merge, shared with `python -m training.fit.train` (and
importable for the sr_train DAG).
Out: checkpoints/{last,best}.ckpt, logs/ and result.json under `output`, Lightning's progress bar on
stderr, the TrainResult as JSON on stdout. Exit codes: 0 trained, 2 bad config or data (found before
training starts), 1 the run failed (e.g. a non-finite loss). With trainer.devices > 1 Lightning re-runs
this same command once per extra rank; multi-node runs use torchrun / srun (see training/fit/train.py).

`--release` then runs the release flow on rank 0 (training/registry/release.py, the same steps as the sr_train DAG
and `crisp demo`): the training as an MLflow run, validation under the settings' gate policy of the task
(`gates.<task>.*`; `--gate KEY=VALUE` may only tighten it), the report, a new version of
`--model-name` (default crisp-sr-x<scale>, crisp-quality, crisp-restore-<kind>, crisp-sr-x<scale>-real) as
@challenger and @champion when the registry's policy lets it. Exit 1 when the version is not promoted.
"""

from __future__ import annotations

import argparse
from pathlib import Path

CONFIGS = Path(__file__).resolve().parents[2] / "training" / "configs"
DEFAULT_CONFIGS = {
    "sr": "espcn_x4.yaml",
    "quality": "quality_net.yaml",
    "restore": "ffdnet_x1.yaml",
    "sr_gan": "gan_x4_real.yaml",
    "matte": "matte_net.yaml",
    "vsr": "frame_fusion_x4.yaml",
}  # --task without --config


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a model (sr, quality, restore, sr_gan, matte, vsr) on committed sample partitions (Lightning, DDP)",
        description="Train a model from committed sample partitions; checkpoints go to `output`.",
    )
    p.add_argument(
        "--task",
        choices=sorted(DEFAULT_CONFIGS),
        help="the model kind; without --config its default YAML (sr: espcn_x4, quality: quality_net, restore: ffdnet_x1, sr_gan: gan_x4_real, matte: matte_net, vsr: frame_fusion_x4)",
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
    p.add_argument(
        "--model-name",
        help="registered model for --release (default: the task's, e.g. crisp-sr-x4, crisp-restore-denoise)",
    )
    p.add_argument(
        "--gate",
        dest="gates",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a stricter gate threshold than the settings' gates.<task> (repeatable, with --release)",
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


def settings_defaults(settings, run_name: str | None = None, task: str = "sr") -> dict:
    """What the settings supply to a training config: data.root, output, the MLflow tracking URI and
    the task's experiment."""
    output = f"{settings.root.rstrip('/')}/runs/{task}_train"
    return {
        "data": {"root": settings.root},
        "output": f"{output}/{run_name}" if run_name else output,
        "mlflow_tracking_uri": settings.mlflow_tracking_uri,
        "mlflow_experiment": f"crisp-{task}",
    }


def task_of(path, overrides=()) -> str:
    """The task a training config names: a `task=` override, else the YAML's `task`, else sr."""
    import yaml

    for item in reversed(list(overrides)):
        key, sep, value = item.partition("=")
        if sep and key.strip() == "task":
            return str(yaml.safe_load(value))
    if path and Path(path).is_file():
        loaded = yaml.safe_load(Path(path).read_text())
        if isinstance(loaded, dict) and loaded.get("task"):
            return str(loaded["task"])
    return "sr"


def train_config_from_settings(path, overrides=(), settings=None, run_name: str | None = None):
    """The TrainConfig of every entry point (`crisp train`, `python -m training.fit.train`, the sr_train DAG).

    settings defaults (`settings_defaults`; `output` = <root>/runs/<task>_train[/<run_name>]) < the
    training YAML `path` < `overrides`, then the settings' S3 options for s3:// URIs left without options.
    `settings` defaults to `load_settings()` (CRISP_CONFIG and CRISP_* variables). Raises ConfigError
    (settings) or TrainConfigError (training config)."""
    from crisp.settings import load_settings
    from training.fit.train import load_train_config

    settings = load_settings() if settings is None else settings
    defaults = settings_defaults(settings, run_name, task_of(path, overrides))
    config = load_train_config(path, list(overrides), defaults)
    return with_s3_options(config, settings)


def config_and_overrides(args: argparse.Namespace) -> tuple[str | None, list[str]]:
    """--config / --task / --set as (the YAML path, the overrides): --task alone picks the task's
    default YAML; --task with --config overrides the YAML's task."""
    if args.train_config or not args.task:
        task = [f"task={args.task}"] if args.task else []
        return args.train_config, [*task, *args.overrides]
    return str(CONFIGS / DEFAULT_CONFIGS[args.task]), list(args.overrides)


def run(args: argparse.Namespace) -> int:
    import json
    from dataclasses import asdict

    from lightning.pytorch.utilities.rank_zero import rank_zero_only

    from crisp.settings import ConfigError, load_settings
    from training.data.catalog import DataError
    from training.fit.train import TrainConfigError, train

    settings = load_settings(args.config)
    try:
        path, overrides = config_and_overrides(args)
        policy = _release_policy(args, settings, task_of(path, overrides)) if args.release else None
        config = train_config_from_settings(path, overrides, settings)
        result = train(config)
    except (TrainConfigError, DataError, ValueError) as exc:
        raise ConfigError(str(exc)) from None
    if getattr(rank_zero_only, "rank", 0) != 0:
        return 0
    print(json.dumps(asdict(result), indent=1))
    return _release(args, settings, config, asdict(result), policy) if args.release else 0


def _release_policy(args: argparse.Namespace, settings, task: str):
    """The settings' policy of `task`, tightened by --gate (refused up front, before any training)."""
    import yaml

    from training.registry.release import tighten_gates

    pairs = [item.partition("=") for item in args.gates]
    if any(not key or not sep for key, sep, _ in pairs):
        raise ValueError(f"--gate takes KEY=VALUE, got {args.gates}")
    policy = getattr(settings.gates, task)
    return tighten_gates(policy, {key: yaml.safe_load(value) for key, _, value in pairs})


def release_target(settings, config, model_name: str | None = None, photos=()):
    """Where a training `config` releases to (every entry point: `crisp train --release`, the training
    DAGs): `model_name` (default, also for '': the task's for the recipe, e.g. crisp-sr-x4, crisp-quality,
    crisp-restore-denoise), the settings' storage and the task's registry and policy, the sample partitions it trained on ("all" resolved)."""
    from pipeline.commit import committed_partitions
    from training.registry.release import ReleaseTarget
    from training.tasks import get_task

    storage = settings.storage()
    partitions = config.data.partitions
    if partitions == "all":
        partitions = committed_partitions(storage, f"pairs/{config.data.recipe}")
    return ReleaseTarget(
        model_name=model_name or get_task(config.task).registry_name(config.model, config.data.recipe),
        storage=storage,
        registry=settings.registry(config.task),
        recipe=config.data.recipe,
        partitions=list(partitions),
        photos=list(photos),
        task=config.task,
    )


def _release(args: argparse.Namespace, settings, config, result: dict, policy) -> int:
    import logging

    from training.registry.release import release

    target = release_target(settings, config, args.model_name)
    outcome = release(target, config.model_dump(mode="json"), result, policy, run_name="crisp train")
    line = f"{target.model_name} v{outcome.version}: {outcome.verdict.summary()}"
    if outcome.promoted:
        logging.getLogger(__name__).info("%s; now @champion", line)
        return 0
    logging.getLogger(__name__).warning("%s; not promoted: %s", line, outcome.refusal)
    return 1
