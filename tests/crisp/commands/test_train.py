"""`crisp train`: argument parsing, settings as defaults, bad config -> ConfigError (exit code 2)."""

from __future__ import annotations

import argparse

import pytest

from crisp.commands import train as command
from crisp.settings import ConfigError, load_settings
from tests.support.pairs_fixture import tiny_pairs  # noqa: F401 (fixture)
from training.fit.train import load_train_config


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config")  # the global settings file, as in crisp/cli.py
    command.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_parses_config_and_repeated_overrides():
    args = _parse(["--config", "s.yaml", "train", "--config", "t.yaml", "--set", "a.b=1", "--set", "c=2"])
    assert (args.config, args.train_config, args.overrides) == ("s.yaml", "t.yaml", ["a.b=1", "c=2"])


def test_bad_config_is_a_config_error(monkeypatch, tmp_path):
    monkeypatch.setenv("CRISP_ROOT", f"file://{tmp_path}")
    args = _parse(["train", "--config", "training/configs/espcn_x4.yaml", "--set", "model.scale=2"])
    with pytest.raises(ConfigError, match="makes x4 pairs but the model is x2"):
        args.run(args)
    args = _parse(["train", "--set", "trainer.max_stepz=2"])
    with pytest.raises(ConfigError, match="trainer.max_stepz"):
        args.run(args)


def test_settings_supply_s3_options_only_to_s3_uris():
    settings = load_settings(
        None, environ={"CRISP_ROOT": "s3://bucket/crisp", "CRISP_S3__ENDPOINT_URL": "http://127.0.0.1:9"}
    )
    on_s3 = command.with_s3_options(
        load_train_config(None, ["data.root=s3://bucket/crisp", "output=s3://b/run"]), settings
    )
    assert on_s3.data.storage_options == {"client_kwargs": {"endpoint_url": "http://127.0.0.1:9"}}
    assert on_s3.output_storage_options == on_s3.data.storage_options
    local = command.with_s3_options(
        load_train_config(None, ["data.root=file:///x", "output=file:///y"]), settings
    )
    assert local.data.storage_options == {} and local.output_storage_options == {}


def test_one_merge_for_every_entry_point(tmp_path):
    settings = load_settings(
        None, environ={"CRISP_ROOT": "s3://bucket/crisp", "CRISP_S3__ENDPOINT_URL": "http://127.0.0.1:9"}
    )
    s3 = {"client_kwargs": {"endpoint_url": "http://127.0.0.1:9"}}
    config = command.train_config_from_settings(
        "training/configs/espcn_x4.yaml", ["trainer.max_steps=300"], settings
    )
    assert (config.data.root, config.output) == ("s3://bucket/crisp", "s3://bucket/crisp/runs/sr_train")
    assert config.data.storage_options == s3 and config.output_storage_options == s3
    assert config.trainer.max_steps == 300 and config.model.arch == "espcn"
    own = tmp_path / "own.yaml"  # what the YAML sets wins over the settings
    own.write_text(
        "data: {root: 'file:///pairs'}\noutput: s3://other/run\noutput_storage_options: {anon: true}\n"
    )
    config = command.train_config_from_settings(own, [], settings, run_name="manual_1")
    assert (config.data.root, config.data.storage_options) == ("file:///pairs", {})
    assert (config.output, config.output_storage_options) == ("s3://other/run", {"anon": True})
    assert (
        command.settings_defaults(settings, "manual_1")["output"]
        == "s3://bucket/crisp/runs/sr_train/manual_1"
    )


def test_module_entry_point_uses_the_same_merge(monkeypatch, capsys):
    from training.fit import train as module

    seen = {}

    def fake_train(config):
        seen["config"] = config
        return module.TrainResult(best_ckpt_uri=None, last_ckpt_uri=f"{config.output}/checkpoints/last.ckpt")

    monkeypatch.setenv("CRISP_ROOT", "s3://bucket/crisp")
    monkeypatch.setattr(module, "train", fake_train)
    assert module.main(["--config", "training/configs/espcn_x4.yaml", "--set", "trainer.max_steps=300"]) == 0
    assert seen["config"] == command.train_config_from_settings(
        "training/configs/espcn_x4.yaml", ["trainer.max_steps=300"], load_settings()
    )
    monkeypatch.setenv("CRISP_S3__ENDPONT_URL", "x")  # bad settings: exit 2 with the reason
    assert module.main(["--config", "training/configs/espcn_x4.yaml"]) == 2
    assert "unknown setting 's3.endpont_url'" in capsys.readouterr().err


def test_release_refuses_looser_gates_before_training(monkeypatch, tmp_path):
    monkeypatch.setenv("CRISP_ROOT", f"file://{tmp_path}/root")
    args = _parse(
        ["train", "--config", "training/configs/espcn_x4.yaml", "--release", "--gate", "margin_db=-100"]
    )
    with pytest.raises(ConfigError, match="margin_db=-100.0 is looser than the policy's 0.3"):
        args.run(args)
    args = _parse(["train", "--release", "--gate", "margin_db"])
    with pytest.raises(ConfigError, match="--gate takes KEY=VALUE"):
        args.run(args)
    assert not (tmp_path / "root").exists()  # nothing trained, nothing written


@pytest.mark.slow
def test_train_release_promotes_under_the_settings_policy(monkeypatch, tmp_path, tiny_pairs, shared_data):  # noqa: F811
    from pipeline.storage import Storage
    from tests.support.pairs_fixture import TINY_PARTITION, copy_root
    from training.registry.versions import list_versions

    root = Storage(f"file://{tmp_path}/root")
    copy_root(tiny_pairs, root)
    monkeypatch.setenv("CRISP_ROOT", root.root)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    # the deployment's policy: permissive for two steps of training; the tiny fixture has no test split
    monkeypatch.setenv("CRISP_GATES__SR__MARGIN_DB", "-100")
    monkeypatch.setenv("CRISP_GATES__SR__GOLDEN_OUTPUT_RANGE", "[-1.0, 2.0]")
    monkeypatch.setenv("CRISP_GATES__SR__PAIR_SPLIT", "null")
    monkeypatch.setenv("CRISP_GATES__SR__BENCHMARKS", f"{{Set5: {shared_data / 'sr_benchmarks' / 'Set5'}}}")
    tiny = ["optim.warmup_steps=0", "data.patch_size=16", "data.batch_size=4", "data.block_size=2",
            "data.workers=0", "trainer.val_check_interval=2", "trainer.enable_progress_bar=false",
            "trainer.max_steps=2", "trainer.accelerator=cpu", f"data.partitions=[{TINY_PARTITION}]"]  # fmt: skip
    argv = ["train", "--config", "training/configs/espcn_x4.yaml", "--release", "--model-name", "cli-sr"]
    argv += [item for override in tiny for item in ("--set", override)]
    args = _parse([*argv, "--gate", "margin_db=-50"])
    assert args.run(args) == 0
    settings = load_settings()
    assert [(v.version, v.aliases) for v in list_versions("cli-sr", settings.registry())] == [
        (1, ["challenger", "champion"])
    ]
    # a stricter trigger the model cannot meet: registered, not promoted, exit 1
    args = _parse([*argv, "--gate", "margin_db=5", "--set", "resume=never"])
    assert args.run(args) == 1
    versions = {v.version: v.aliases for v in list_versions("cli-sr", settings.registry())}
    assert versions == {2: ["challenger"], 1: ["champion"]}


def test_task_picks_its_default_config_output_and_experiment(monkeypatch, tmp_path):
    monkeypatch.setenv("CRISP_ROOT", f"file://{tmp_path}/root")
    path, overrides = command.config_and_overrides(_parse(["train", "--task", "quality"]))
    assert path.endswith("training/configs/quality_net.yaml") and overrides == []
    config = command.train_config_from_settings(path, overrides)
    assert (config.task, config.model.arch, config.mlflow_experiment) == (
        "quality",
        "quality_net",
        "crisp-quality",
    )
    assert config.output == f"file://{tmp_path}/root/runs/quality_train"
    # --task with --config names the task of that YAML; a task= override wins over the YAML's
    args = _parse(["train", "--task", "sr", "--config", "training/configs/espcn_x4.yaml"])
    assert command.config_and_overrides(args) == ("training/configs/espcn_x4.yaml", ["task=sr"])
    assert command.task_of("training/configs/quality_net.yaml", ["task=sr"]) == "sr"
    assert command.task_of("training/configs/quality_net.yaml") == "quality"
    assert command.task_of(None) == "sr"


@pytest.mark.slow
def test_train_release_of_a_quality_model(monkeypatch, tmp_path, grid_root):
    from pipeline.storage import Storage
    from tests.support.pairs_fixture import copy_root
    from tests.support.quality_grid import PARTITION
    from training.registry.versions import list_versions

    root = Storage(f"file://{tmp_path}/root")
    copy_root(grid_root, root)
    monkeypatch.setenv("CRISP_ROOT", root.root)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    for gate, value in (
        ("MIN_SRCC", -1),
        ("MIN_FAMILY_SRCC", -1),
        ("MIN_PAIR_ACCURACY", 0),
        ("LATENCY_BUDGET_MS", 5000),
    ):
        monkeypatch.setenv(f"CRISP_GATES__QUALITY__{gate}", str(value))  # a permissive deployment policy
    tiny = ["optim.warmup_steps=0", "data.crop=64", "data.groups_per_batch=2", "data.samples_per_group=4",
            "data.workers=0", "trainer.max_steps=4", "trainer.val_check_interval=4",
            "trainer.enable_progress_bar=false", "trainer.accelerator=cpu", f"data.partitions=[{PARTITION}]"]  # fmt: skip
    argv = ["train", "--task", "quality", "--release", *[i for o in tiny for i in ("--set", o)]]
    args = _parse(argv)
    assert args.run(args) == 0
    settings = load_settings()
    registry = settings.registry("quality")
    assert registry.experiment == "crisp-quality"
    (version,) = list_versions("crisp-quality", registry)
    assert (version.version, version.aliases) == (1, ["challenger", "champion"])
    assert {"srcc", "pair_accuracy"} <= set(version.metrics) and version.scale is None
    report = tmp_path / "root" / "runs" / "quality_train" / "report" / "report.html"
    assert "jpeg" in report.read_text()  # the task's own report: per-family figures
    # a trigger may only tighten gates.quality: a looser one is refused before training
    args = _parse([*argv, "--gate", "min_srcc=-2"])
    with pytest.raises(ConfigError, match="min_srcc"):
        args.run(args)
