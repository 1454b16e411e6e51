"""`crisp train`: argument parsing, settings as defaults, bad config -> ConfigError (exit code 2)."""

from __future__ import annotations

import argparse

import pytest

from crisp.commands import train as command
from crisp.settings import ConfigError, load_settings
from training.train import load_train_config


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
