"""Ingest: catalog feed -> committed `images/<date>` partition (shards, index, ledgers, stats, manifest).

feed (read and validate rows) -> process (fetch + clean on a process pool) -> outcomes (dedup, split,
records) -> write (shards, Parquet, GX gate, commit); `run.ingest_partition` ties them together and
`read` opens committed partitions. Configuration: `config.IngestConfig`.
"""
