"""CrawlConfig defaults and validation."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from pipeline.crawl.config import DEFAULT_USER_AGENT, CrawlConfig


def test_defaults_need_no_setup():
    config = CrawlConfig()
    assert (config.global_concurrency, config.per_host_concurrency, config.per_host_rate) == (64, 16, 0.0)
    assert (config.max_retries, config.max_redirects, config.max_body_bytes) == (3, 5, 50 * 2**20)
    assert config.allow_hosts == [] and config.respect_robots and config.respect_x_robots_tag
    assert config.user_agent == DEFAULT_USER_AGENT and config.robots_agent == "crispbot"
    assert (config.breaker_failures, config.retry_total_timeout) == (5, False)


def test_frozen_and_extra_fields_forbidden():
    with pytest.raises(ValidationError):
        CrawlConfig(concurrency=3)
    with pytest.raises(ValidationError):
        CrawlConfig().max_retries = 9


def test_allow_hosts_accepts_names_ips_and_networks():
    config = CrawlConfig(allow_hosts=["127.0.0.1", "10.0.0.0/8", "[::1]", "Images.Example.com"])
    assert config.allow_hosts == ["127.0.0.1", "10.0.0.0/8", "::1", "images.example.com"]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"allow_hosts": ["not a host!"]}, "allow_hosts entry"),
        ({"per_host_concurrency": 100}, "per_host_concurrency"),
        ({"global_concurrency": 0}, "global_concurrency"),
        ({"per_host_rate": -1}, "per_host_rate"),
        ({"backoff_base_s": 5, "backoff_max_s": 1}, "backoff_max_s"),
        ({"user_agent": "  "}, "user_agent"),
        ({"user_agent": "CrispBot\r\nX: y"}, "single line"),
        ({"total_timeout_s": 0}, "total_timeout_s"),
        ({"breaker_failures": -1}, "breaker_failures"),
    ],
)
def test_bad_values_name_the_field(fields, message):
    with pytest.raises(ValueError, match=message):
        CrawlConfig(**fields)
