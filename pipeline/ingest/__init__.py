"""Ingest: catalog feed -> committed `images/<date>` partition (shards, index, ledgers, stats, manifest).

feed (read and validate rows, streaming, within caps) -> shares + distribute (fetch + clean batches as
Dask tasks, `process.crawl_and_clean` per batch) -> outcomes (dedup against the `dedup_index`, split,
records) -> write (shards, Parquet, GX gate, compare-and-swap commit) -> dedup_index.record;
`run.ingest_partition` ties them together and `read` opens committed partitions. Configuration:
`config.IngestConfig`.
"""
