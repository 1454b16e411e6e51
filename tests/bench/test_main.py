"""bench/__main__.py: a benchmark that measures with another's kept model runs after it, when both run."""

from __future__ import annotations

from bench.__main__ import RUNS_AFTER, available, in_run_order


def test_the_gan_bench_runs_after_the_quality_bench_that_keeps_its_model():
    assert RUNS_AFTER["gan"] == ("quality",)
    everything = in_run_order(available())
    assert sorted(everything) == available()
    assert everything.index("quality") < everything.index("gan")
    assert in_run_order(["gan", "ingest", "quality"]) == ["quality", "gan", "ingest"]
    assert in_run_order(["gan"]) == ["gan"]  # asked alone, it uses whatever model was kept before
