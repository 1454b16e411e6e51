"""Acceptance of issue 3's ingest: real photos over loopback HTTP into file:// and S3, idempotent reruns,
retry of only the retryable failures, and the whole bad-input matrix in one feed, outcome by outcome; and
of issue 13's scoring at ingest: a real exported quality model's scores, ranks and low_quality rejects,
compliance columns, and "auto" without a registry."""

from __future__ import annotations

import csv
import functools
import hashlib
import logging
from pathlib import Path

import pytest

from pipeline.commit import PartitionNotCommittedError
from pipeline.crawl import CrawlConfig
from pipeline.ingest import run as ingest_run
from pipeline.ingest.config import IngestConfig
from pipeline.ingest.distribute import fetch_and_process
from pipeline.ingest.feed import FeedError
from pipeline.ingest.read import read_image, read_partition, read_partition_or_none
from pipeline.ingest.run import ingest_partition, parse_partition
from pipeline.storage import Storage
from schemas.expectations import GateError, ingest_suites, validate_or_raise
from schemas.reasons import Reason
from tests.support import bad_images
from tests.support.catalog_feed import catalog_rows, write_feed
from tests.support.http_server import LoopbackHTTPServer, Route

DAY = "2026-04-01"


@pytest.fixture
def server(product_photos):
    with LoopbackHTTPServer(product_photos) as running:
        yield running


@pytest.fixture(scope="module")
def config() -> IngestConfig:
    crawl = CrawlConfig(
        allow_hosts=["127.0.0.1"],
        max_retries=1,
        backoff_base_s=0.01,
        backoff_max_s=2.0,
        connect_timeout_s=2.0,
        read_timeout_s=0.5,
        total_timeout_s=4.0,
        max_body_bytes=2 * 2**20,
        max_redirects=3,
    )
    return IngestConfig(crawl=crawl, workers=2)


def outcome_of(storage, partition: str) -> dict[str, tuple]:
    """row_key -> ("accepted", image row) | ("duplicate", ledger row) | ("rejected", ledger row)."""
    part = read_partition(storage, partition)
    found = {}
    for name, table in (("accepted", part.index), ("duplicate", part.duplicates), ("rejected", part.rejects)):
        for row in table.to_pylist():
            assert row["row_key"] not in found, f"{row['row_key']} has two outcomes"
            found[row["row_key"]] = (name, row)
    counts = part.manifest.counts
    assert counts["inputs"] == counts["accepted"] + counts["duplicates"] + counts["rejected"] == len(found)
    return found


def test_real_photos_on_s3_commit_and_a_rerun_is_a_no_op(
    server, product_photos, s3_storage, tmp_path, config
):
    rows = catalog_rows(product_photos)[::8]  # 60 photos across every category
    local = write_feed(tmp_path / "feed.csv", rows, server.base_url)
    s3_storage.write_bytes("feeds/catalog.csv", local.read_bytes())
    feed_uri = s3_storage.uri("feeds/catalog.csv")

    first = ingest_partition(feed_uri, DAY, s3_storage, config)
    assert first.inputs == len(rows) == 60 and first.rejected == {}
    assert first.accepted + first.duplicates == 60 and first.accepted >= 40 and first.fetched == 60
    outcomes = outcome_of(s3_storage, DAY)
    accepted = [row for kind, row in outcomes.values() if kind == "accepted"]
    assert {r["product_id"] for r in accepted} <= {r["sku"] for r in rows}
    assert all(r["format"] == "jpeg" and not r["reencoded"] for r in accepted)  # originals kept, no re-encode
    for row in accepted[:5]:
        name = row["url"].rsplit("/", 1)[1]
        assert read_image(s3_storage, first.manifest, row) == (product_photos / name).read_bytes()
    assert {r["title"] for r in accepted} <= {
        r["product_name"].strip() for r in rows
    }  # product_name -> title

    manifest_bytes = s3_storage.read_bytes(f"images/{DAY}/_manifest.json")
    second = ingest_partition(feed_uri, DAY, s3_storage, config)
    assert second.unchanged and second.manifest == first.manifest
    assert s3_storage.read_bytes(f"images/{DAY}/_manifest.json") == manifest_bytes


@pytest.mark.slow
def test_all_476_real_photos_on_file(server, product_photos, local_storage, tmp_path, config):
    rows = catalog_rows(product_photos)
    feed = write_feed(tmp_path / "catalog.csv", rows, server.base_url)
    summary = ingest_partition(f"file://{feed}", DAY, local_storage, config)
    assert summary.inputs == 476 and summary.rejected == {}
    # Colour variants of one garment hash alike but are kept apart by their colour signatures; the
    # only near duplicates are mp09 and mp12 black / blue: one photograph each, filed under two colours.
    assert (summary.accepted, summary.duplicates_exact, summary.duplicates_near) == (474, 0, 2)
    assert summary.images_per_s > 0
    outcomes = outcome_of(local_storage, DAY)
    file_of = {
        row["image_id"]: row["url"].rsplit("/", 1)[-1]
        for kind, row in outcomes.values()
        if kind == "accepted"
    }
    near = {
        frozenset((row["url"].rsplit("/", 1)[-1], file_of[row["duplicate_of"]]))
        for kind, row in outcomes.values()
        if kind == "duplicate"
    }
    assert near == {
        frozenset(("mp09-black_main.jpg", "mp09-blue_main.jpg")),
        frozenset(("mp12-black_main.jpg", "mp12-blue_main.jpg")),
    }


def test_retry_failed_fetches_only_the_retryable_failures(server, tmp_path, local_storage, config):
    server.add_route("/gone.jpg", Route(statuses=(404,)))
    server.add_route(
        "/flaky.jpg", Route(statuses=(503, 503, 200), body=bad_images.jpeg(31), content_type="image/jpeg")
    )
    for seed in (32, 33):
        server.add_route(f"/ok{seed}.png", Route(body=bad_images.png(seed), content_type="image/png"))
    feed = tmp_path / "day.csv"
    feed.write_text(
        "product_id,image_url\n"
        + "".join(
            f"P{n},{server.url(path)}\n"
            for n, path in enumerate(["/ok32.png", "/ok33.png", "/gone.jpg", "/flaky.jpg"])
        )
    )
    first = ingest_partition(str(feed), DAY, local_storage, config)
    assert (first.accepted, first.rejected) == (2, {"http_client_error": 1, "http_server_error": 1})
    assert server.hits("/flaky.jpg") == 2  # one try and one retry, both 503

    paths = ("/ok32.png", "/ok33.png", "/gone.jpg", "/flaky.jpg")
    before = [server.hits(p) for p in paths]
    retried = ingest_partition(str(feed), DAY, local_storage, config, retry_failed=True)
    assert [server.hits(p) - b for p, b in zip(paths, before, strict=True)] == [0, 0, 0, 1]
    assert retried.fetched == 1 and retried.retried and not retried.unchanged
    assert (retried.accepted, retried.rejected, retried.inputs) == (3, {"http_client_error": 1}, 4)
    assert retried.manifest.attempt_id != first.manifest.attempt_id
    outcomes = outcome_of(local_storage, DAY)
    assert outcomes["day.csv:4"][0] == "accepted"
    for kind, row in outcomes.values():  # images kept from the first attempt were carried into the new one
        if kind == "accepted":
            assert len(read_image(local_storage, retried.manifest, row)) == row["size"]


def test_a_partition_run_logs_progress_retries_and_a_summary(
    server, tmp_path, local_storage, config, monkeypatch, caplog
):
    """Start line, a progress line per URL (cadence 0) and the final one, the retry WARNING, the summary."""
    server.add_route(
        "/flaky.jpg", Route(statuses=(503, 200), body=bad_images.jpeg(41), content_type="image/jpeg")
    )
    for seed in (42, 43):
        server.add_route(f"/ok{seed}.png", Route(body=bad_images.png(seed), content_type="image/png"))
    feed = tmp_path / "day.csv"
    paths = ["/ok42.png", "/ok43.png", "/flaky.jpg"]
    feed.write_text(
        "product_id,image_url\n" + "".join(f"P{n},{server.url(p)}\n" for n, p in enumerate(paths))
    )
    monkeypatch.setattr(ingest_run, "PROGRESS_EVERY_S", 0.0)  # a line for every URL
    caplog.set_level(logging.DEBUG, logger="pipeline")
    calls = []
    one_url_batches = config.model_copy(update={"batch_urls": 1})  # progress comes a batch at a time
    summary = ingest_partition(
        str(feed),
        DAY,
        local_storage,
        one_url_batches,
        progress=lambda done, total: calls.append((done, total)),
    )
    assert summary.accepted == 3 and calls == [(1, 3), (2, 3), (3, 3)] and summary.workers == 2
    lines = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "pipeline.ingest.run"]
    messages = [m for _, m in lines]
    assert any(
        m.startswith(f"ingest images/{DAY}: {feed}: 3 row(s) to fetch as 3 distinct URL(s)") for m in messages
    )
    progress = [(level, m) for level, m in lines if m.startswith(f"ingest {DAY}: ")]
    assert [m.split(" (")[0] for _, m in progress] == [f"ingest {DAY}: {n}/3" for n in (1, 2)] + [
        f"ingest {DAY}: done 3/3"
    ]
    assert "url/s, ETA " in progress[0][1]
    assert {level for level, _ in progress} == {
        "DEBUG"
    }  # INFO without a callback; here the callback shows it
    assert ("WARNING", "1 URL(s) needed retries (1 extra tries); 0 still failed") in [
        (level, m.split(": ", 1)[1]) for level, m in lines
    ]
    assert any(
        level == "INFO" and f"committed attempt {summary.manifest.attempt_id}: 3 input(s), 3 accepted" in m
        for level, m in lines
    )


def test_cleaning_each_body_once_commits_the_same_partition(
    server, product_photos, local_storage, tmp_path, config, monkeypatch
):
    """Reusing the result of identical bodies changes nothing committed: index, ledgers and shards."""
    rows = catalog_rows(product_photos)[::40]  # 12 photos, each under 3 query strings
    photo = (product_photos / rows[0]["file"]).read_bytes()
    bodies = {
        "cmyk": bad_images.cmyk_jpeg(6),
        "broken": bad_images.corrupt_jpeg(7),
        "same-pixels": bad_images.as_png(photo),
    }
    feed = tmp_path / "feed.csv"
    with open(feed, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["product_id", "image_url"])
        writer.writerows(
            [r["sku"], f"{server.base_url}/{r['file']}?copy={c}"] for c in range(3) for r in rows
        )
        for name, body in bodies.items():
            for copy in ("a", "b"):
                server.add_route(f"/x/{name}-{copy}", Route(body=body, content_type="image/png"))
                writer.writerow([f"X-{name}", server.url(f"/x/{name}-{copy}")])
    fresh_storage = Storage((tmp_path / "fresh").as_uri())
    reused = ingest_partition(f"file://{feed}", DAY, local_storage, config)
    monkeypatch.setattr(
        ingest_run, "fetch_and_process", functools.partial(fetch_and_process, reuse_identical_bodies=False)
    )
    fresh = ingest_partition(f"file://{feed}", DAY, fresh_storage, config)
    assert reused.to_dict() | {"seconds": 0, "images_per_s": 0, "attempt_id": 0, "content_digest": 0} == (
        fresh.to_dict() | {"seconds": 0, "images_per_s": 0, "attempt_id": 0, "content_digest": 0}
    )
    assert (reused.accepted, reused.duplicates_exact, reused.rejected) == (13, 27, {"decode_error": 2})

    clocks = {"fetched_at", "ingested_at", "recorded_at"}
    a, b = read_partition(local_storage, DAY), read_partition(fresh_storage, DAY)
    for name in ("index", "duplicates", "rejects"):
        table_a, table_b = getattr(a, name), getattr(b, name)
        assert table_a.schema == table_b.schema, name
        keep = [c for c in table_a.column_names if c not in clocks]
        rows_a = sorted(table_a.select(keep).to_pylist(), key=lambda r: r["row_key"])
        rows_b = sorted(table_b.select(keep).to_pylist(), key=lambda r: r["row_key"])
        assert rows_a == rows_b, name
    shards = sorted(f.name for f in a.manifest.files if f.name.startswith("shards/"))
    assert shards == sorted(f.name for f in b.manifest.files if f.name.startswith("shards/")) != []
    for shard in shards:
        assert a.manifest.file(shard).sha256 == b.manifest.file(shard).sha256, shard


def test_bad_input_runs_and_errors_are_named(local_storage, tmp_path, config):
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        parse_partition("2026-13-01")
    with pytest.raises(FeedError, match="does not exist"):
        ingest_partition(str(tmp_path / "nope.csv"), DAY, local_storage, config)
    (tmp_path / "f.csv").write_text("product_id,image_url\n")
    with pytest.raises(PartitionNotCommittedError, match="run without it first"):
        ingest_partition(str(tmp_path / "f.csv"), DAY, local_storage, config, retry_failed=True)


def matrix_routes(server: LoopbackHTTPServer, product_photos: Path) -> list[tuple[str, str, tuple]]:
    """(label, URL, expected outcome) for every case of issue 3's bad-input matrix served by `server`."""
    photo_a, photo_b, photo_c = "mh01-black_main.jpg", "luma-foam-roller.jpg", "mj12-black_main.jpg"
    image = {"content_type": "image/jpeg"}
    server.add_route("/m/404.jpg", Route(statuses=(404,)))
    server.add_route("/m/flaky.jpg", Route(statuses=(500, 200), body=bad_images.jpeg(1), **image))
    server.add_route(
        "/m/429.jpg",
        Route(
            statuses=(429, 200), body=bad_images.jpeg(2), status_headers={429: {"Retry-After": "1"}}, **image
        ),
    )
    server.add_route(
        "/m/drip.jpg", Route(body=bad_images.jpeg(3), drip_interval_s=1.0, drip_chunk=256, **image)
    )
    whole = bad_images.jpeg(4)
    server.add_route("/m/truncated.jpg", Route(body=whole[:2000], declared_length=len(whole), **image))
    server.add_route(
        "/m/html.jpg", Route(body=b"<!doctype html><html><body>" + b"x" * 600 + b"</body></html>", **image)
    )
    server.add_route("/m/huge.jpg", Route(body=b"\xff\xd8\xff\xe0" + bytes(3 * 2**20), **image))
    server.add_route("/m/loop-a", Route(statuses=(302,), location="/m/loop-b"))
    server.add_route("/m/loop-b", Route(statuses=(302,), location="/m/loop-a"))
    chain = server.add_redirect_chain("/m/chain", hops=5, target=f"/{photo_c}")
    server.add_route(
        "/m/to-metadata", Route(statuses=(302,), location="http://169.254.169.254/latest/meta-data/")
    )
    server.add_route("/m/notimage.jpg", Route(body=b"just some text that ends in .jpg", **image))
    bodies = {
        "corrupt.jpg": bad_images.corrupt_jpeg(5),
        "bomb.png": bad_images.bomb_png(),
        "cmyk.jpg": bad_images.cmyk_jpeg(6),
        "16bit.png": bad_images.png_16bit(7),
        "palette.png": bad_images.palette_png_with_transparency(8),
        "anim.gif": bad_images.animated_gif(9),
        "rotated.jpg": bad_images.exif_rotated_jpeg(10),
        "tiny.jpg": bad_images.jpeg(11, 100, 100),
        "wide.jpg": bad_images.jpeg(12, 1600, 300),
        "resized.jpg": bad_images.resized_copy((product_photos / photo_b).read_bytes()),
        "same_pixels.png": bad_images.as_png((product_photos / photo_a).read_bytes()),
    }
    for name, body in bodies.items():
        server.add_route(f"/m/{name}", Route(body=body, content_type="application/octet-stream"))
    server.set_robots("User-agent: *\nDisallow: /private/\n")
    server.add_route("/private/secret.jpg", Route(body=bad_images.jpeg(13), **image))
    server.add_route(
        "/m/noai.jpg", Route(body=bad_images.jpeg(14), headers={"X-Robots-Tag": "noai"}, **image)
    )
    accepted = ("accepted", set())
    return [
        ("photo_a", server.url(f"/{photo_a}?copy=1"), accepted),
        ("photo_b", server.url(f"/{photo_b}"), accepted),
        ("404", server.url("/m/404.jpg"), ("rejected", Reason.HTTP_CLIENT_ERROR)),
        ("500_then_200", server.url("/m/flaky.jpg"), accepted),
        ("429_retry_after", server.url("/m/429.jpg"), accepted),
        ("drip", server.url("/m/drip.jpg"), ("rejected", Reason.TIMEOUT)),
        ("truncated", server.url("/m/truncated.jpg"), ("rejected", Reason.TRUNCATED)),
        ("html_as_image", server.url("/m/html.jpg"), ("rejected", Reason.NOT_AN_IMAGE)),
        ("too_large", server.url("/m/huge.jpg"), ("rejected", Reason.TOO_LARGE)),
        ("redirect_loop", server.url("/m/loop-a"), ("rejected", Reason.REDIRECT_LOOP)),
        ("redirect_chain", chain, ("rejected", Reason.TOO_MANY_REDIRECTS)),
        ("redirect_private", server.url("/m/to-metadata"), ("rejected", Reason.BLOCKED_ADDRESS)),
        ("text_named_jpg", server.url("/m/notimage.jpg"), ("rejected", Reason.NOT_AN_IMAGE)),
        ("corrupt_jpeg", server.url("/m/corrupt.jpg"), ("rejected", Reason.DECODE_ERROR)),
        ("bomb_png", server.url("/m/bomb.png"), ("rejected", Reason.DECOMPRESSION_BOMB)),
        ("cmyk_jpeg", server.url("/m/cmyk.jpg"), ("accepted", {"cmyk"})),
        ("png_16bit", server.url("/m/16bit.png"), ("accepted", {"high_bit_depth"})),
        ("palette_alpha", server.url("/m/palette.png"), ("accepted", {"palette", "had_alpha"})),
        ("animated_gif", server.url("/m/anim.gif"), ("accepted", {"animated"})),
        ("exif_rotated", server.url("/m/rotated.jpg"), ("accepted", {"exif_rotated"})),
        ("tiny", server.url("/m/tiny.jpg"), ("rejected", Reason.TOO_SMALL)),
        ("extreme_aspect", server.url("/m/wide.jpg"), ("rejected", Reason.BAD_ASPECT_RATIO)),
        ("same_image_other_url", server.url(f"/{photo_a}?copy=2"), ("duplicate", "exact", "photo_a")),
        ("resized_reencoded", server.url("/m/resized.jpg"), ("duplicate", "near", "photo_b")),
        ("same_pixels_as_png", server.url("/m/same_pixels.png"), ("duplicate", "exact", "photo_a")),
        ("robots_disallow", server.url("/private/secret.jpg"), ("rejected", Reason.ROBOTS_DISALLOWED)),
        ("x_robots_noai", server.url("/m/noai.jpg"), ("rejected", Reason.X_ROBOTS_NOAI)),
    ]


def test_bad_input_matrix_in_one_feed(server, product_photos, local_storage, tmp_path, config):
    cases = matrix_routes(server, product_photos)
    feed = tmp_path / "matrix.csv"
    with open(feed, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["product_id", "image_url", "title"])
        for n, (label, url, _) in enumerate(cases):
            writer.writerow([f"P{n}", url, label])
        writer.writerows([["", server.url("/m/x.jpg"), "no_product_id"], ["P98", "not a url", "bad_url"]])
        writer.writerow(["P99", server.url("/m/y.jpg"), "too", "many", "fields"])
    feed_rejects = {
        f"matrix.csv:{len(cases) + 1}": Reason.FEED_MISSING_FIELD,
        f"matrix.csv:{len(cases) + 2}": Reason.FEED_BAD_URL,
        f"matrix.csv:{len(cases) + 3}": Reason.FEED_BAD_ROW,
    }

    summary = ingest_partition(f"file://{feed}", DAY, local_storage, config)
    outcomes = outcome_of(local_storage, DAY)
    assert summary.inputs == len(cases) + 3 == len(outcomes)
    image_of = {}
    for n, (label, _, expected) in enumerate(cases, start=1):
        kind, row = outcomes[f"matrix.csv:{n}"]
        assert kind == expected[0], (
            f"{label}: {kind} {row.get('reason') or row.get('kind')}, expected {expected}"
        )
        if kind == "accepted":
            image_of[label] = row["image_id"]
            assert expected[1] <= set(row["normalize_flags"]), f"{label}: flags {row['normalize_flags']}"
        elif kind == "rejected":
            assert row["reason"] == expected[1], f"{label}: {row['reason']} ({row['detail']})"
            assert row["retryable"] == (expected[1] in (Reason.TIMEOUT, Reason.TRUNCATED))
        else:
            assert (row["kind"], row["duplicate_of"]) == (expected[1], image_of[expected[2]]), label
    for key, reason in feed_rejects.items():
        assert outcomes[key][0] == "rejected" and outcomes[key][1]["reason"] == reason
        assert outcomes[key][1]["stage"] == "feed"

    kept = outcomes["matrix.csv:1"][1]  # photo_a: its JPEG bytes are stored, not the PNG with equal pixels
    assert (
        read_image(local_storage, summary.manifest, kept)
        == (product_photos / "mh01-black_main.jpg").read_bytes()
    )
    rotated = next(
        r for k, r in outcomes.values() if k == "accepted" and "exif_rotated" in r["normalize_flags"]
    )
    assert (rotated["width"], rotated["height"]) == (300, 400)
    assert server.hits("/m/flaky.jpg") == 2 and server.hits("/m/429.jpg") == 2
    assert server.hits("/private/secret.jpg") == 0  # robots.txt is asked before the image, never after

    # the accounting rule, checked again by the GX suite on what was committed
    part = read_partition(local_storage, DAY)
    frames = {
        "index": part.index.to_pandas(),
        "rejects": part.rejects.to_pandas(),
        "duplicates": part.duplicates.to_pandas(),
    }
    validate_or_raise(frames, ingest_suites(), part.manifest.counts)
    with pytest.raises(GateError, match=r"inputs == accepted \+ accepted_videos \+ duplicates \+ rejected"):
        validate_or_raise(frames, ingest_suites(), {**part.manifest.counts, "inputs": summary.inputs + 1})


def test_cross_day_duplicates_come_from_the_persistent_index(
    server, product_photos, local_storage, tmp_path, config, monkeypatch
):
    """Day 2 repeats a day-1 photo (exact) and a re-encoded smaller copy of another (near): both are found
    through dedup/images, and day 2's run reads no earlier partition's index (its cost is its own size)."""
    from pipeline.ingest import dedup_index
    from pipeline.ingest import read as ingest_read

    rows = catalog_rows(product_photos)[:6]
    ingest_partition(
        str(write_feed(tmp_path / "d1.csv", rows[:4], server.base_url)), "2026-04-01", local_storage, config
    )
    assert list(dedup_index.read_index(local_storage).partitions) == ["2026-04-01"]
    smaller = bad_images.resized_copy((product_photos / rows[1]["file"]).read_bytes())
    server.add_route("/m/b-small.jpg", Route(body=smaller, content_type="image/jpeg"))
    day2 = [rows[0], {**rows[1], "sku": "B2", "file": "m/b-small.jpg"}, rows[4], rows[5]]
    reads = []
    monkeypatch.setattr(
        dedup_index,
        "read_index_hashes",
        lambda s, m: reads.append(m.partition) or ingest_read.read_index_hashes(s, m),
    )
    summary = ingest_partition(
        str(write_feed(tmp_path / "d2.csv", day2, server.base_url)), "2026-04-02", local_storage, config
    )
    assert reads == ["2026-04-02"]  # only its own commit is indexed; day 1 comes from the index
    assert (summary.accepted, summary.duplicates_exact, summary.duplicates_near) == (2, 1, 1)
    dups = {
        row["kind"]: row["duplicate_of_partition"]
        for kind, row in outcome_of(local_storage, "2026-04-02").values()
        if kind == "duplicate"
    }
    assert dups == {"exact": "2026-04-01", "near": "2026-04-01"}
    assert sorted(dedup_index.read_index(local_storage).partitions) == ["2026-04-01", "2026-04-02"]


def test_a_rerun_that_lost_most_images_is_refused_unless_replace(
    server, product_photos, local_storage, tmp_path, config
):
    rows = catalog_rows(product_photos)[:5]
    first = ingest_partition(
        str(write_feed(tmp_path / "full.csv", rows, server.base_url)), DAY, local_storage, config
    )
    empty = tmp_path / "empty.csv"
    empty.write_text("product_id,image_url\n")  # a feed export that came back with its header only
    with pytest.raises(
        ingest_run.PartitionShrinkError, match=r"keeps 0 of its 5 accepted images .*--replace"
    ):
        ingest_partition(str(empty), DAY, local_storage, config)
    assert read_partition(local_storage, DAY).manifest == first.manifest  # the good day is kept
    small = write_feed(tmp_path / "small.csv", rows[:3], server.base_url)  # 3 of 5 kept: over the 0.5 share
    kept = ingest_partition(str(small), DAY, local_storage, config)
    replaced = ingest_partition(str(empty), DAY, local_storage, config, replace=True)
    assert replaced.accepted == 0 and read_partition(local_storage, DAY).manifest == replaced.manifest
    history = {p.rsplit("/", 1)[1] for p in local_storage.list(f"images/{DAY}/history")}
    assert {f"{m.attempt_id}.json" for m in (first.manifest, kept.manifest, replaced.manifest)} <= history


def test_of_two_ingests_of_one_date_at_once_the_loser_says_so(
    server, product_photos, local_storage, tmp_path, config
):
    """A run holds after fetching until a concurrent run of the same date has committed: its commit is
    refused with the winner's attempt named, and the partition holds the winner."""
    import threading

    rows = catalog_rows(product_photos)[:4]
    winner_committed = threading.Event()
    outcome: list[object] = []

    def hold_at_the_end(done: int, total: int) -> None:
        if done == total:
            assert winner_committed.wait(timeout=120)

    def slow_run():
        try:
            feed = str(write_feed(tmp_path / "slow.csv", rows, server.base_url))
            outcome.append(ingest_partition(feed, DAY, local_storage, config, progress=hold_at_the_end))
        except ingest_run.SupersededError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=slow_run)
    thread.start()
    fast_feed = str(write_feed(tmp_path / "fast.csv", rows[1:], server.base_url))
    try:
        fast = ingest_partition(fast_feed, DAY, local_storage, config)
    finally:
        winner_committed.set()
        thread.join(timeout=120)
    assert len(outcome) == 1 and isinstance(outcome[0], ingest_run.SupersededError), outcome
    assert f"superseded by attempt {fast.manifest.attempt_id}" in str(outcome[0])
    assert read_partition(local_storage, DAY).manifest == fast.manifest


# -- the learned quality model at ingest (issue 13): scores, ranks, low_quality rejects, compliance -----

SCORED_PRODUCTS = ("MH01", "MH02", "MH03", "24-WG085")  # three apparel products of 3 photos, one yoga strap


@pytest.fixture(scope="module")
def client():
    """A real 2-worker LocalCluster shared by the scoring runs (started once for them)."""
    from distributed import Client

    from pipeline.cluster import start_local_cluster

    cluster = start_local_cluster(2)
    with Client(cluster) as running:
        yield running
    cluster.close()


def scored_feed(product_photos: Path, tmp_path: Path, base_url: str) -> tuple[Path, list[dict]]:
    rows = [r for r in catalog_rows(product_photos) if r["sku"] in SCORED_PRODUCTS]
    return write_feed(tmp_path / "scored.csv", rows, base_url), rows


def stored_scores(storage, part, model_file: Path) -> dict[str, float]:
    """image_id -> the data side's own scorer on each committed image, decoded from its stored bytes."""
    import numpy as np

    from pipeline.clean.normalize import decode_rgb
    from pipeline.quality import QualityScorer

    scorer = QualityScorer(model_file)
    return {
        row["image_id"]: scorer.score_rgb(np.asarray(decode_rgb(read_image(storage, part.manifest, row))))
        for row in part.index.to_pylist()
    }


def test_a_quality_model_scores_ranks_and_rejects_below_min_quality(
    server, product_photos, local_storage, tmp_path, config, client, quality_model_file
):
    import statistics

    from pipeline.ingest import scoring

    feed, rows = scored_feed(product_photos, tmp_path, server.base_url)
    assert len(rows) == 10 and {r["file"] for r in rows if r["sku"] == "24-WG085"} == {"luma-yoga-strap.jpg"}
    scored = config.model_copy(update={"quality_model": str(quality_model_file), "batch_urls": 2})
    summary = ingest_partition(str(feed), DAY, local_storage, scored, client=client)
    assert (summary.inputs, summary.accepted, summary.rejected) == (10, 10, {})
    assert summary.quality_model == str(quality_model_file) == summary.to_dict()["quality_model"]
    part = read_partition(local_storage, DAY)
    assert part.manifest.extra["run"]["quality_model"] == str(quality_model_file)
    assert part.manifest.schema_versions["image_index"] == 3
    truth = stored_scores(local_storage, part, quality_model_file)
    index = part.index.to_pylist()
    for row in index:
        assert 0.0 <= row["quality_learned"] <= 5.0
        assert abs(row["quality_learned"] - truth[row["image_id"]]) <= 1e-5, row["url"]
    for product in SCORED_PRODUCTS:  # 1 = best score of the product, ties by image_id
        mine = sorted((r for r in index if r["product_id"] == product), key=lambda r: r["rank_in_product"])
        assert [r["rank_in_product"] for r in mine] == list(range(1, len(mine) + 1))
        assert mine == sorted(mine, key=lambda r: (-r["quality_learned"], r["image_id"]))
    # main-image compliance: the yoga strap on white passes, the apparel runs off the frame
    by_file = {r["url"].rsplit("/", 1)[1]: r for r in index}
    strap = by_file["luma-yoga-strap.jpg"]
    assert strap["compliant"] and strap["white_border_share"] == 1.0 and strap["product_fill"] >= 0.85
    apparel = [r for f, r in by_file.items() if f != "luma-yoga-strap.jpg"]
    assert not any(r["compliant"] for r in apparel) and all(r["product_fill"] > 0.9 for r in apparel)
    # one scorer per worker process, built from the bytes scattered once (each batch names them by key)
    digest = hashlib.sha256(quality_model_file.read_bytes()).hexdigest()
    built = client.run(lambda: list(scoring._SCORERS))
    assert len(built) == 2 and all(keys in ([], [digest]) for keys in built.values()), built

    threshold = statistics.median(truth.values())
    low = {r["row_key"] for r in index if r["quality_learned"] < threshold}
    assert len(low) == 5
    strict_storage = Storage((tmp_path / "strict").as_uri())
    strict = scored.model_copy(update={"min_quality": threshold})
    filtered = ingest_partition(str(feed), DAY, strict_storage, strict, client=client)
    assert filtered.rejected == {"low_quality": 5} and filtered.accepted == 5
    assert filtered.inputs == filtered.accepted + filtered.duplicates + filtered.rejected_total
    outcomes = outcome_of(strict_storage, DAY)  # inputs = accepted + duplicates + rejected, row by row
    assert {key for key, (kind, _) in outcomes.items() if kind == "rejected"} == low
    for key in low:
        reject = outcomes[key][1]
        assert (reject["reason"], reject["stage"], reject["retryable"]) == ("low_quality", "clean", False)
        assert f"below ingest.min_quality {threshold:g}" in reject["detail"]
        assert "learned quality " in reject["detail"]
    kept = [row for kind, row in outcomes.values() if kind == "accepted"]
    assert all(row["quality_learned"] >= threshold for row in kept)
    for product in SCORED_PRODUCTS:  # ranks count only the images the partition kept
        ranks = sorted(r["rank_in_product"] for r in kept if r["product_id"] == product)
        assert ranks == list(range(1, len(ranks) + 1))


def test_auto_without_a_registry_scores_nothing_and_a_bad_model_stops_before_fetching(
    server, product_photos, local_storage, tmp_path, config, client
):
    from pipeline.quality import QualityModelError

    feed, rows = scored_feed(product_photos, tmp_path, server.base_url)
    for bad in (
        config.model_copy(update={"quality_model": str(tmp_path / "missing.onnx")}),
        config.model_copy(update={"min_quality": 2.5}),  # auto, and no registry to find a model in
    ):
        with pytest.raises(QualityModelError) as caught:
            ingest_partition(str(feed), DAY, local_storage, bad, client=client)
        assert "\n" not in str(caught.value) and str(caught.value).startswith("ingest.")
    assert server.total_hits() == 0 and read_partition_or_none(local_storage, DAY) is None

    summary = ingest_partition(str(feed), DAY, local_storage, config, client=client, tracking_uri=None)
    assert summary.quality_model is None and (summary.accepted, summary.rejected) == (10, {})
    part = read_partition(local_storage, DAY)
    assert part.manifest.extra["run"]["quality_model"] is None
    assert part.index["quality_learned"].null_count == part.index["rank_in_product"].null_count == 10
    for column in ("white_border_share", "product_fill", "compliant"):  # measured with or without a model
        assert part.index[column].null_count == 0, column
    assert not local_storage.exists("mlflow")  # looking for a registry does not create one
