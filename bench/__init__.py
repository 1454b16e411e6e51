"""Benchmarks: each `bench/bench_<name>.py` measures one stage and writes `bench/results/<name>.json`."""
