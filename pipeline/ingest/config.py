"""Ingest configuration: the typed settings of one ingest run, composed of the crawl and clean configs.

In: keyword arguments or the `ingest:` section of the Crisp settings (all optional). Out: `IngestConfig`,
validated and frozen; a bad value raises ValueError naming the field. Kept apart from `run` so that loading
settings does not import the crawler, Pillow or pyarrow.
"""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from pipeline.clean.config import CleanConfig
from pipeline.crawl.config import CrawlConfig
from pipeline.ingest.split import SplitConfig


class IngestConfig(BaseModel):
    """How `crisp ingest` / the `product_images_ingest` DAG turn a feed into an `images/<date>` partition.

    - crawl: fetching limits, retries, politeness and the address allow-list (`CrawlConfig`).
    - clean: decode limits, dedup radius and quality-flag thresholds (`CleanConfig`).
    - split: train / val / test fractions by product (`SplitConfig`, default 0.9 / 0.05 / 0.05).
    - shard_target_bytes: a tar shard is closed once it reaches this size (default 256 MiB).
    - workers: processes cleaning images while the crawler fetches (default None = os.cpu_count()).
    - start_method: how worker processes start; "forkserver" (default) forks them from a clean,
      preloaded server, which is safe in threaded hosts such as Airflow workers and test servers.
    - workdir: local folder for the spool and shards in progress (default None = the system temp dir).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    crawl: CrawlConfig = Field(default_factory=CrawlConfig)
    clean: CleanConfig = Field(default_factory=CleanConfig)
    split: SplitConfig = Field(default_factory=SplitConfig)
    shard_target_bytes: int = Field(default=256 * 2**20, ge=1)
    workers: int | None = Field(default=None, ge=1)
    start_method: Literal["forkserver", "spawn", "fork"] = "forkserver"
    workdir: str | None = None

    def worker_count(self) -> int:
        return self.workers or os.cpu_count() or 1
