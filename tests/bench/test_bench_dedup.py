"""Tests of the dedup-history bench's own pieces: the synthetic history and the fresh-process lookup."""

from __future__ import annotations

import numpy as np

from bench.bench_dedup import build_history, measure, peak_kib


def test_history_is_indexed_and_a_fresh_process_finds_its_planted_neighbours(local_storage, tmp_path):
    history = build_history(local_storage, partitions=6, images=200, rng=np.random.default_rng(1))
    assert history.size == 1200 and np.unique(history).size == 1200
    queries = history[:5] ^ np.uint64(1)  # one bit away from five prior images
    path = str(tmp_path / "q.npy")
    np.save(path, queries)
    found = measure(local_storage.uri(), path, "index")
    assert found["found"] >= 5 and found["seconds"] > 0 and found["peak_growth_mib"] >= 0
    assert measure(local_storage.uri(), path, "full_scan")["found"] >= 5
    assert peak_kib() > 0
