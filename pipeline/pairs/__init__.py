"""Pairs: committed image partitions -> seeded, tiled, labelled LR/HR pairs, built on Dask.

`config.PairsConfig` (what to build), `make.make_pairs_for_shard` (the pure per-shard function),
`job.build_pairs` (the Dask adapter and commit), `cluster.dask_client` (local or remote cluster),
`checks.check_pairs` (the Great Expectations gate).
"""
