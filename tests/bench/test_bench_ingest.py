"""Tests of the ingest benchmark's own pieces: config from the environment, URL list, server, figures."""

from __future__ import annotations

import urllib.request

import pytest
from pydantic import ValidationError

from bench.bench_ingest import IngestBenchConfig, PhotoServer, rate_figures, url_rows


def test_config_from_env_defaults_quick_and_repeats(monkeypatch):
    monkeypatch.delenv("CRISP_BENCH_QUICK", raising=False)
    monkeypatch.delenv("CRISP_BENCH_REPEATS", raising=False)
    monkeypatch.delenv("CRISP_BENCH_PHOTOS", raising=False)
    assert IngestBenchConfig.from_env().repeats == 3
    monkeypatch.setenv("CRISP_BENCH_QUICK", "1")
    assert (IngestBenchConfig.from_env().quick, IngestBenchConfig.from_env().repeats) == (True, 1)
    monkeypatch.setenv("CRISP_BENCH_REPEATS", "5")
    assert IngestBenchConfig.from_env().repeats == 5
    monkeypatch.setenv("CRISP_BENCH_PHOTOS", "7")
    assert IngestBenchConfig.from_env().photo_limit == 7
    monkeypatch.setenv("CRISP_BENCH_REPEATS", "0")
    with pytest.raises(ValidationError, match="repeats"):
        IngestBenchConfig.from_env()


def test_photo_files_full_and_quick(product_photos):
    full = IngestBenchConfig(photos=product_photos).photo_files()
    quick = IngestBenchConfig(photos=product_photos, quick=True).photo_files()
    assert len(full) == 476 and all((product_photos / f).is_file() for f in full)
    assert quick == full[: len(full) // 4]


def test_url_rows_are_distinct_urls_of_the_same_files():
    rows = url_rows("http://127.0.0.1:9", ["a.jpg", "b.jpg"], 4)
    urls = [u for _, u in rows]
    assert len(rows) == 8 and len(set(urls)) == 8
    assert {u.split("?")[0] for u in urls} == {"http://127.0.0.1:9/a.jpg", "http://127.0.0.1:9/b.jpg"}
    assert rows[0] == ("a", "http://127.0.0.1:9/a.jpg?copy=0")


def test_photo_server_serves_the_photo_bytes_under_any_query(product_photos):
    name = IngestBenchConfig(photos=product_photos).photo_files()[0]
    with PhotoServer(product_photos) as server:
        body = urllib.request.urlopen(f"{server.base_url}/{name}?copy=3", timeout=10).read()
    assert body == (product_photos / name).read_bytes()


def test_rate_figures_use_the_median_run():
    runs = [
        {"seconds": 4.0, "successes": 8},
        {"seconds": 2.0, "successes": 8},
        {"seconds": 100.0, "successes": 7},
    ]
    figures = rate_figures("x", 8, runs, cores=2)
    assert figures["x_images_per_s"]["value"] == 2.0
    assert figures["x_images_per_s"]["successes"] == [8, 8, 7]
    assert figures["x_images_per_s_per_core"]["value"] == 1.0


def test_summary_flags_each_target_met_or_missed_from_the_medians():
    from bench.bench_ingest import summarize

    crisp = {"accepted": 10, "inputs": 10}
    runs = {
        "floor": [{"seconds": 1.0}, {"seconds": 1.2}, {"seconds": 0.8}],  # 10 images: 10/s
        "crisp_unique_1w": [{"seconds": 4.0, **crisp}],  # 2.5/s
        "crisp_unique_2w": [{"seconds": 2.0, **crisp}],  # 5/s: 2.0x of 1 worker, 0.5 of the floor
        "crisp_copies_2w": [{"seconds": 3.0, **crisp}],
        "i2d_skip_reencode": [{"seconds": 5.0, "span_s": 2.5, "successes": 10}],  # steady 4/s
    }
    config = IngestBenchConfig(copies=4)
    figures, targets = summarize(runs, 10, 40, 2, config, "")
    assert figures["decode_floor_images_per_s"]["value"] == 10.0
    assert figures["crisp_copies_2w_images_per_s"]["value"] == round(40 / 3.0, 1)
    assert figures["i2d_skip_reencode_steady_images_per_s"]["value"] == 4.0
    by_name = {name.split(">=")[0]: t for name, t in targets.items()}
    assert by_name["crisp_unique_2w_over_img2dataset_skip_reencode_steady"] == {
        "target": 1.5,
        "measured": 1.25,
        "met": False,
    }
    assert (
        by_name["crisp_unique_2w_over_decode_floor"]["met"]
        and by_name["crisp_unique_2_workers_over_1"]["met"]
    )
    _, without_i2d = summarize(
        {k: v for k, v in runs.items() if not k.startswith("i2d")}, 10, 40, 2, config, "no venv"
    )
    assert without_i2d["crisp_unique_2w_over_img2dataset_skip_reencode_steady>=1.5"]["met"] is False
    assert without_i2d["crisp_unique_2w_over_img2dataset_skip_reencode_steady>=1.5"]["why"] == "no venv"
