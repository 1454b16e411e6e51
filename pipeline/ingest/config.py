"""Ingest configuration: the typed settings of one ingest run, composed of the crawl and clean configs.

In: keyword arguments or the `ingest:` section of the Crisp settings (all optional). Out: `IngestConfig`,
validated and frozen; a bad value raises ValueError naming the field. Kept apart from `run` so that loading
settings does not import the crawler, Pillow or pyarrow.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from pipeline.clean.config import CleanConfig
from pipeline.crawl.config import CrawlConfig
from pipeline.ingest.split import SplitConfig
from pipeline.video.config import VideoConfig


class FeedLimits(BaseModel):
    """Caps on one feed, so that a hostile or broken feed costs bounded time and memory.

    - max_decompressed_bytes: the feed's bytes after gzip decompression (a plain feed's own size); past it
      reading stops with FeedError (default 1 GiB).
    - max_rows: data rows, accepted and rejected; past it reading stops with FeedError (default 5,000,000).
    - max_row_chars: characters in one CSV / TSV record (all its lines) or one JSONL line; a longer row is
      a feed_row_too_long reject, read past in bounded pieces (default 1 MiB).
    - max_field_chars: characters in one field (a top-level string value in JSONL and Parquet); a row with
      a longer one is a feed_row_too_long reject (default 64 KiB).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_decompressed_bytes: int = Field(default=2**30, ge=1)
    max_rows: int = Field(default=5_000_000, ge=1)
    max_row_chars: int = Field(default=2**20, ge=1)
    max_field_chars: int = Field(default=64 * 2**10, ge=1)


class IngestConfig(BaseModel):
    """How `crisp ingest` / the `product_images_ingest` DAG turn a feed into an `images/<date>` partition.

    - crawl: fetching limits, retries, politeness and the address allow-list (`CrawlConfig`).
    - clean: decode limits, dedup radius and quality-flag thresholds (`CleanConfig`).
    - video: the caps and dedup knobs for video bodies (`pipeline.video.config.VideoConfig`); whether the
      crawler takes videos at all is `crawl.accept_videos`.
    - feed: caps on the feed's decompressed size, rows, row and field length (`FeedLimits`).
    - split: train / val / test fractions by product (`SplitConfig`, default 0.9 / 0.05 / 0.05).
    - shard_target_bytes: a tar shard is closed once it reaches this size (default 256 MiB).
    - workers: Dask worker processes of the LocalCluster a run starts when no scheduler is given
      (default None = one per core).
    - scheduler_address: a running Dask scheduler (tcp://host:8786) to crawl and clean on; default None =
      DASK_SCHEDULER_ADDRESS, else a LocalCluster (`crisp ingest --scheduler`, settings `dask_scheduler`).
    - batch_urls: URLs per Dask task (default 64): the unit a dead worker's replacement redoes.
    - workdir: local folder for the spool and shards in progress (default None = the system temp dir).
    - min_kept_share: a run that would replace a committed partition keeping fewer than this share of
      its accepted images is refused (the old partition stays) unless `replace=True` / `--replace`
      (default 0.5; 0 = never refuse). A feed that came back empty or broken cannot wipe a good day.
    - quality_model: the learned quality model that scores every cleaned image (`pipeline/ingest/scoring`):
      "auto" (default) = `models:/crisp-quality@champion` in the settings' MLflow registry when it is
      registered, else no scoring (the run is exactly as without the model); "off" = never score; any
      other value is a reference that must resolve (`models:/<name>@<alias>`, `models:/<name>/<version>`,
      a .onnx file or an MLflow model folder), else the run stops with one line before anything is fetched.
    - min_quality: images the model scores below this (0-5) are rejected as low_quality (default None =
      keep every score); set without a usable model, the run stops before anything is fetched.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    crawl: CrawlConfig = Field(default_factory=CrawlConfig)
    clean: CleanConfig = Field(default_factory=CleanConfig)
    video: VideoConfig = Field(default_factory=VideoConfig)
    feed: FeedLimits = Field(default_factory=FeedLimits)
    split: SplitConfig = Field(default_factory=SplitConfig)
    shard_target_bytes: int = Field(default=256 * 2**20, ge=1)
    workers: int | None = Field(default=None, ge=1)
    scheduler_address: str | None = None
    batch_urls: int = Field(default=64, ge=1)
    workdir: str | None = None
    min_kept_share: float = Field(default=0.5, ge=0.0, le=1.0)
    quality_model: str = Field(default="auto", min_length=1)
    min_quality: float | None = Field(default=None, ge=0.0, le=5.0)
