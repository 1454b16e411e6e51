"""IngestConfig: defaults that need no setup, nested validation, and the `ingest` section of the settings."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from crisp.settings import ConfigError, load_settings
from pipeline.ingest.config import IngestConfig


def test_defaults():
    config = IngestConfig()
    assert config.shard_target_bytes == 256 * 2**20 and config.workers is None
    assert config.scheduler_address is None and config.batch_urls == 64 and config.min_kept_share == 0.5
    assert config.feed.max_decompressed_bytes == 2**30
    assert (config.split.train, config.split.val, config.split.test) == (0.9, 0.05, 0.05)
    assert config.crawl.allow_hosts == [] and config.clean.phash_radius == 4
    with pytest.raises(ValidationError, match="batch_urls"):
        IngestConfig(batch_urls=0)


def test_bad_values_name_the_field():
    with pytest.raises(ValidationError, match="shard_target_bytes"):
        IngestConfig(shard_target_bytes=0)
    with pytest.raises(ValidationError, match="must add up to 1"):
        IngestConfig.model_validate({"split": {"train": 0.5}})
    with pytest.raises(ValidationError, match="extra_forbidden|Extra inputs"):
        IngestConfig.model_validate({"crawl_config": {}})


def test_settings_section_from_yaml_and_env(tmp_path):
    path = tmp_path / "crisp.yaml"
    path.write_text(
        "ingest:\n  workers: 2\n  crawl:\n    allow_hosts: [127.0.0.1]\n"
        "  split: {train: 0.8, val: 0.1, test: 0.1}\n"
    )
    settings = load_settings(
        path, environ={"CRISP_INGEST__CRAWL__MAX_RETRIES": "1", "CRISP_FEED_TEMPLATE": "file:///f/{date}.csv"}
    )
    assert settings.ingest.workers == 2 and settings.ingest.crawl.allow_hosts == ["127.0.0.1"]
    assert settings.ingest.crawl.max_retries == 1 and settings.ingest.split.train == 0.8
    with pytest.raises(ConfigError, match="unknown setting 'ingest.shards'"):
        load_settings(environ={"CRISP_INGEST__SHARDS": "1"})
