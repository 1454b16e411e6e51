"""Tests of the loader benchmark's pieces: config, tile list, S3 mirror, figures, ratios and the decision."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import pytest
from pydantic import ValidationError

from bench.bench_loader import LoaderBenchConfig, decision, mirror, moto_bucket, rate, ratios, train_tiles
from bench.loader_contenders import crisp_epochs
from tests.support.pairs_fixture import tiny_pairs  # noqa: F401 (a fixture, used by name)


def test_config_from_env(monkeypatch):
    for name in ("CRISP_BENCH_QUICK", "CRISP_BENCH_REPEATS", "CRISP_BENCH_PHOTOS"):
        monkeypatch.delenv(name, raising=False)
    assert (LoaderBenchConfig.from_env().epochs, LoaderBenchConfig.from_env().photo_limit) == (3, 48)
    monkeypatch.setenv("CRISP_BENCH_QUICK", "1")
    assert LoaderBenchConfig.from_env().photo_limit == 24
    monkeypatch.setenv("CRISP_BENCH_PHOTOS", "8")
    monkeypatch.setenv("CRISP_BENCH_REPEATS", "2")
    assert (LoaderBenchConfig.from_env().epochs, LoaderBenchConfig.from_env().photo_limit) == (2, 8)
    monkeypatch.setenv("CRISP_BENCH_REPEATS", "0")
    with pytest.raises(ValidationError, match="epochs"):
        LoaderBenchConfig.from_env()


def test_train_tiles_are_the_train_split_filtered_by_patch(tiny_pairs):  # noqa: F811
    from training.data.catalog import load_catalog

    root = Path(urlparse(tiny_pairs.root).path)
    train = load_catalog(tiny_pairs, "bicubic_x4", ["2026-01-01"], 4).split("train")
    tiles = train_tiles(root, patch=24)
    fitting = [r["pair_id"] for r in train.to_pylist() if min(r["lr_width"], r["lr_height"]) >= 24]
    assert 0 < len(fitting) < train.num_rows and sorted(t[1] for t in tiles) == sorted(fitting)
    assert (
        train_tiles(root, patch=48) == []
    )  # <= 32 px LR tiles cannot give a 48 px crop: Crisp skips them too


@pytest.mark.slow
def test_crisp_reads_the_mirrored_pairs_from_moto_s3(tiny_pairs):  # noqa: F811
    server, endpoint, bucket = moto_bucket()
    try:
        options = {"key": "testing", "secret": "testing", "client_kwargs": {"endpoint_url": endpoint}}
        mirror(Path(urlparse(tiny_pairs.root).path) / "pairs", f"s3://{bucket}/crisp/pairs", options)
        spec = {"root": f"s3://{bucket}/crisp", "options": options, "workers": 0, "epochs": 1}
        spec.update(batch_size=4, patch=16)
        local = dict(spec, root=tiny_pairs.root, options={})
        assert crisp_epochs(spec)["epochs"][0]["samples"] == crisp_epochs(local)["epochs"][0]["samples"] > 0
    finally:
        server.stop()


def test_rate_is_the_median_epoch_rate():
    runs = [
        {"seconds": 2.0, "samples": 100},
        {"seconds": 1.0, "samples": 100},
        {"seconds": 4.0, "samples": 100},
    ]
    result = rate(runs)
    assert (
        result["value"] == 50.0
        and result["epochs_s"] == [2.0, 1.0, 4.0]
        and result["samples_per_epoch"] == 100
        and result["first_epoch"] == 50.0
    )


def test_ratios_pair_every_cell_both_contenders_measured():
    figures = {
        "crisp_local_0w": {"value": 200.0},
        "litdata_local_0w": {"value": 100.0},
        "crisp_s3_2w": {"value": 90.0},
        "litdata_s3_2w": {"value": 100.0},
        "litdata_s3_2w_warm_cache": {"value": 300.0},
        "crisp_s3_0w": {"value": 50.0},  # no LitData figure: no ratio
    }
    assert ratios(figures) == {"crisp_over_litdata_local_0w": 2.0, "crisp_over_litdata_s3_2w": 0.9}


def test_decision_follows_the_s3_ratios():
    assert decision({"crisp_over_litdata_s3_0w": 1.2, "crisp_over_litdata_s3_2w": 0.95}).startswith(
        "Decision: read the pair shards directly"
    )
    slower = decision({"crisp_over_litdata_local_0w": 1.5, "crisp_over_litdata_s3_2w": 0.6})
    assert slower.startswith("Direct shard reads are slower") and "s3_2w: 0.6" in slower
    assert decision({"crisp_over_litdata_local_0w": 1.0}).startswith("Decision pending")
