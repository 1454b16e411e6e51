"""Crawl configuration: one typed, frozen object that every crawl module reads.

In: keyword arguments (all optional). Out: `CrawlConfig`, validated; a bad value raises ValueError
naming the field and the fix. The defaults crawl politely on the public internet with no setup.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pipeline.crawl.robots import product_token

DEFAULT_USER_AGENT = "CrispBot/0.1 (+https://github.com/crisp-images/crisp)"
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_]([a-z0-9_-]{0,62}))*\.?$")


class CrawlConfig(BaseModel):
    """How the crawler fetches: limits, retries, timeouts, politeness and the address allow-list.

    - global_concurrency: requests in flight at once over the whole crawl (default 64).
    - per_host_concurrency: requests in flight at once to one host (default 16).
    - per_host_rate: requests per second to one host, 0 = unlimited (default 0).
    - max_retries: extra tries after a retryable failure (timeouts, connection errors, truncated
      bodies, 5xx, 408, 429; see retry_total_timeout); default 3.
    - backoff_base_s / backoff_max_s: exponential back-off with full jitter, base * 2**n capped at the
      max; a Retry-After longer than backoff_max_s ends the retries (the server asked us to go away).
    - connect_timeout_s / read_timeout_s / total_timeout_s: TCP connect, silence between reads, and one
      whole attempt including the body.
    - retry_total_timeout: retry an attempt that ran past total_timeout_s (default False: a response that
      drips in slowly enough to hit it would most likely do so again, tying up a slot each time).
    - breaker_failures: consecutive URLs of one host (host:port) that end, after their retries, in a
      timeout, 5xx or connection error before the host's circuit breaker opens and its remaining URLs
      are rejected as host_unavailable without a request; an answer resets the count; 0 = off
      (default 5).
    - max_body_bytes: larger bodies are rejected as too_large (default 50 MiB; product clips and spins
      are well under it, raise it for long 1080p videos).
    - accept_videos: a body whose magic bytes are a video container (MP4, MOV, WebM, MKV, AVI) is
      fetched like an image and probed by the cleaner (default True); False rejects it as not_an_image.
    - max_redirects: redirect hops followed, each re-checked by the address guard and robots.txt.
    - user_agent: sent on every request and matched against robots.txt groups (its product token).
    - respect_robots / respect_x_robots_tag: honour robots.txt and `X-Robots-Tag: noai|noimageai`.
    - allow_hosts: host names, IP addresses or CIDR networks allowed past the private-address guard
      (default none; tests pass ["127.0.0.1"]).
    - storage_options: fsspec options for `file://` and `s3://` sources (for example an S3 endpoint).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    global_concurrency: int = Field(default=64, ge=1)
    per_host_concurrency: int = Field(default=16, ge=1)
    per_host_rate: float = Field(default=0.0, ge=0.0)
    max_retries: int = Field(default=3, ge=0)
    backoff_base_s: float = Field(default=0.5, ge=0.0)
    backoff_max_s: float = Field(default=30.0, ge=0.0)
    connect_timeout_s: float = Field(default=10.0, gt=0.0)
    read_timeout_s: float = Field(default=20.0, gt=0.0)
    total_timeout_s: float = Field(default=60.0, gt=0.0)
    retry_total_timeout: bool = False
    breaker_failures: int = Field(default=5, ge=0)
    max_body_bytes: int = Field(default=50 * 2**20, ge=1)
    max_redirects: int = Field(default=5, ge=0)
    accept_videos: bool = True
    user_agent: str = DEFAULT_USER_AGENT
    respect_robots: bool = True
    respect_x_robots_tag: bool = True
    allow_hosts: list[str] = Field(default_factory=list)
    storage_options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("user_agent")
    @classmethod
    def _user_agent_names_a_product(cls, value: str) -> str:
        if not value.strip() or not value.strip()[0].isalnum():
            raise ValueError("user_agent must start with a product token such as 'CrispBot/0.1'")
        if any(ch in value for ch in "\r\n"):
            raise ValueError("user_agent must be a single line")
        return value.strip()

    @field_validator("allow_hosts")
    @classmethod
    def _allow_hosts_parse(cls, entries: list[str]) -> list[str]:
        cleaned = []
        for entry in entries:
            text = entry.strip().lower().strip("[]")
            try:
                ipaddress.ip_network(text, strict=False)
            except ValueError:
                if not _HOSTNAME.match(text):
                    raise ValueError(
                        f"allow_hosts entry {entry!r} is not a host name, IP address or CIDR network; "
                        "use e.g. 'images.example.com', '127.0.0.1' or '10.0.0.0/8'"
                    ) from None
            cleaned.append(text)
        return cleaned

    @model_validator(mode="after")
    def _limits_are_consistent(self) -> CrawlConfig:
        if self.per_host_concurrency > self.global_concurrency:
            raise ValueError(
                f"per_host_concurrency ({self.per_host_concurrency}) exceeds global_concurrency "
                f"({self.global_concurrency}); lower it or raise global_concurrency"
            )
        if self.backoff_max_s < self.backoff_base_s:
            raise ValueError("backoff_max_s must be >= backoff_base_s")
        return self

    @property
    def robots_agent(self) -> str:
        """The product token robots.txt groups are matched against, e.g. 'crispbot'."""
        return product_token(self.user_agent)
