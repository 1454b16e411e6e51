"""`crisp ingest`: a run and a --retry-failed run against a loopback server, summaries, exit codes."""

from __future__ import annotations

import argparse
import json
import logging

import pytest

from crisp.commands import ingest
from pipeline.ingest.read import read_partition
from pipeline.storage import Storage
from tests.support import bad_images
from tests.support.http_server import LoopbackHTTPServer, Route

DAY = "2026-05-01"


def crisp_ingest(*argv: str) -> int:
    """Run `crisp ingest ...` in process through the command's own parser."""
    parser = argparse.ArgumentParser(prog="crisp")
    parser.add_argument("--config")
    ingest.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["ingest", *argv])
    return args.run(args)


@pytest.fixture
def quick_retries(monkeypatch):
    for name, value in {"MAX_RETRIES": "1", "BACKOFF_BASE_S": "0.01", "READ_TIMEOUT_S": "2"}.items():
        monkeypatch.setenv(f"CRISP_INGEST__CRAWL__{name}", value)


def test_ingest_then_retry_only_the_failed_urls(tmp_path, capsys, quick_retries, caplog):
    # the levels `crisp` itself sets (crisp/cli.py): other libraries' INFO lines stay out of its stderr
    # (Dask logs a closed comm at shutdown at INFO, with its traceback)
    caplog.set_level(logging.WARNING, logger="distributed")
    with LoopbackHTTPServer() as server:
        server.add_route("/a.png", Route(body=bad_images.png(41), content_type="image/png"))
        server.add_route("/b.jpg", Route(body=bad_images.jpeg(42), content_type="image/jpeg"))
        server.add_route("/gone.jpg", Route(statuses=(404,)))
        server.add_route(
            "/flaky.jpg", Route(statuses=(503, 503, 200), body=bad_images.jpeg(43), content_type="image/jpeg")
        )
        feed = tmp_path / "feed.jsonl"
        feed.write_text(
            "".join(
                json.dumps({"sku": f"S{n}", "url": server.url(p)}) + "\n"
                for n, p in enumerate(["/a.png", "/b.jpg", "/gone.jpg", "/flaky.jpg"])
            )
        )
        common = [
            "--feed",
            str(feed),
            "--date",
            DAY,
            "--root",
            f"file://{tmp_path}/root",
            "--allow-host",
            "127.0.0.1",
        ]
        assert crisp_ingest(*common, "--workers", "1") == 0
        out, err = capsys.readouterr()
        assert f"images/{DAY}: committed" in out
        assert "accepted     2" in out and "rejected     2" in out
        assert "http_client_error" in out and "http_server_error" in out and "images/s" in out
        assert "scored by    no quality model" in out  # "auto", and no registry under the root
        assert f"ingest {DAY}" in err  # the progress bar

        hits = {p: server.hits(p) for p in ("/a.png", "/b.jpg", "/gone.jpg", "/flaky.jpg")}
        assert crisp_ingest(*common, "--retry-failed", "--json", "--no-progress") == 0
        summary = json.loads(capsys.readouterr().out)
        assert {p: server.hits(p) - n for p, n in hits.items()} == {
            "/a.png": 0,
            "/b.jpg": 0,
            "/gone.jpg": 0,
            "/flaky.jpg": 1,
        }
    assert (summary["accepted"], summary["rejected"], summary["fetched"]) == (3, {"http_client_error": 1}, 1)
    assert read_partition(Storage(f"file://{tmp_path}/root"), DAY).manifest.counts["accepted"] == 3

    # The feed export comes back empty: the rerun is refused (exit 1, one line), --replace goes through.
    feed.write_text(json.dumps({"sku": "S9", "url": "http://127.0.0.1:9/none.jpg"}) + "\n")
    assert crisp_ingest(*common, "--no-progress") == 1
    err = capsys.readouterr().err
    assert "refusing to replace attempt" in err and "--replace" in err and "Traceback" not in err
    assert read_partition(Storage(f"file://{tmp_path}/root"), DAY).manifest.counts["accepted"] == 3
    assert crisp_ingest(*common, "--no-progress", "--replace") == 0
    assert read_partition(Storage(f"file://{tmp_path}/root"), DAY).manifest.counts["accepted"] == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--date", "2026-02-30"],
            "--date: partition date '2026-02-30' is not a calendar date in the form YYYY-MM-DD",
        ),
        (["--date", "yesterday"], "YYYY-MM-DD"),
        (["--date", DAY], "feed.csv does not exist"),
        (["--date", DAY, "--allow-host", "not a host!"], "invalid ingest option: crawl.allow_hosts"),
        (["--date", DAY, "--retry-failed"], "run without it first"),
    ],
)
def test_bad_arguments_exit_2_with_the_reason(tmp_path, capsys, argv, message):
    (tmp_path / "empty.csv").write_text("product_id,image_url\n")
    feed = tmp_path / ("empty.csv" if "--retry-failed" in argv else "feed.csv")
    code = crisp_ingest("--feed", str(feed), "--root", f"file://{tmp_path}/root", *argv)
    assert code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("QUALITY_MODEL", "/no/such/model.onnx", "ingest.quality_model='/no/such/model.onnx': no such model"),
        (
            "MIN_QUALITY",
            "2.5",
            "ingest.min_quality=2.5 needs a quality model, but models:/crisp-quality@champion",
        ),
    ],
)
def test_a_quality_model_that_cannot_be_used_exits_2_before_fetching(
    tmp_path, capsys, monkeypatch, setting, value, message
):
    monkeypatch.setenv(f"CRISP_INGEST__{setting}", value)
    with LoopbackHTTPServer() as server:
        server.add_route("/a.png", Route(body=bad_images.png(44), content_type="image/png"))
        feed = tmp_path / "feed.csv"
        feed.write_text(f"product_id,image_url\nP1,{server.url('/a.png')}\n")
        root = f"file://{tmp_path}/root"
        assert crisp_ingest("--feed", str(feed), "--date", DAY, "--root", root, "--no-progress") == 2
        assert server.total_hits() == 0
    err = capsys.readouterr().err
    assert err.startswith(f"crisp ingest: {message}") and err.count("\n") == 1
    assert not (tmp_path / "root").exists()
