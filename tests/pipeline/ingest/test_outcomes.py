"""Outcomes: each fetched row becomes exactly one of accepted / duplicate / rejected; earlier days win;
colour variants stay apart, except against a schema v1 prior (colour unknown: pHash alone)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pipeline.clean import CleanConfig, PriorHashes, Rejection
from pipeline.crawl import FetchResult
from pipeline.ingest.config import IngestConfig
from pipeline.ingest.feed import FeedRow
from pipeline.ingest.outcomes import OutcomeError, check_outcomes, decide_outcomes, load_prior
from pipeline.ingest.process import Processed, process_image
from pipeline.ingest.write import write_partition
from schemas.image_index import phash_from_int64
from tests.support import bad_images
from tests.support.image_partitions import write_image_partition

NOW = datetime(2026, 6, 2, tzinfo=UTC)


def fetched(url: str, ok: bool = True, reason: str | None = None) -> FetchResult:
    return FetchResult(
        url,
        url,
        url,
        ok,
        None,
        "png" if ok else None,
        reason,
        "ok" if ok else "HTTP 404",
        404 if reason else 200,
        1,
        0.1,
        NOW,
    )


@pytest.fixture(scope="module")
def images():
    """Processed synthetic images: two distinct pictures and a smaller re-encoded copy of the first."""
    data = {
        "a": bad_images.png(51, 400, 400),
        "b": bad_images.png(52),
        "a_small": bad_images.resized_copy(bad_images.png(51, 400, 400)),
    }
    return {name: process_image(body, CleanConfig()) for name, body in data.items()}


def test_each_row_gets_one_outcome(images):
    rows = [
        FeedRow("f.csv:1", "P1", "http://h/a"),
        FeedRow("f.csv:2", "P2", "http://h/a"),  # the same URL twice: one fetch, an exact duplicate
        FeedRow("f.csv:3", "P3", "http://h/small"),
        FeedRow("f.csv:4", "P1", "http://h/b"),
        FeedRow("f.csv:5", "P4", "http://h/404"),
        FeedRow("f.csv:6", "P5", "http://h/broken"),
    ]
    by_url = {
        "http://h/a": Processed(fetched("http://h/a"), images["a"]),
        "http://h/small": Processed(fetched("http://h/small"), images["a_small"]),
        "http://h/b": Processed(fetched("http://h/b"), images["b"]),
        "http://h/404": Processed(fetched("http://h/404", ok=False, reason="http_client_error")),
        "http://h/broken": Processed(fetched("http://h/broken"), rejection=Rejection("decode_error", "bad")),
    }
    accepted, duplicates, rejects = decide_outcomes(
        rows, by_url, PriorHashes.empty(), {}, "2026-06-02", IngestConfig(), NOW
    )
    check_outcomes(
        [r.row_key for r in rows], *([r["row_key"] for r in g] for g in (accepted, duplicates, rejects))
    )
    assert sorted(r["row_key"] for r in accepted) == ["f.csv:1", "f.csv:4"]
    dups = {d["row_key"]: (d["kind"], d["duplicate_of"], d["duplicate_of_partition"]) for d in duplicates}
    assert dups == {
        "f.csv:2": ("exact", images["a"].image_id, "2026-06-02"),
        "f.csv:3": ("near", images["a"].image_id, "2026-06-02"),
    }
    assert {(r["row_key"], r["stage"], r["reason"], r["retryable"]) for r in rejects} == {
        ("f.csv:5", "fetch", "http_client_error", False),
        ("f.csv:6", "clean", "decode_error", False),
    }
    splits = {r["product_id"]: r["split"] for r in accepted}
    assert len(splits) == 1  # both accepted rows are product P1: one split
    assert phash_from_int64(accepted[0]["phash"]) in (images["a"].phash, images["b"].phash)
    assert {r["color_signature"] for r in accepted} == {
        images["a"].color_signature,
        images["b"].color_signature,
    }


def test_earlier_partitions_win_and_later_ones_are_ignored(local_storage, images):
    def commit(day: str, image) -> None:
        row = FeedRow("f.csv:1", "P1", f"http://h/{day}")
        (record,), _, _ = decide_outcomes(
            [row],
            {row.image_url: Processed(fetched(row.image_url), image)},
            PriorHashes.empty(),
            {},
            day,
            IngestConfig(),
            NOW,
        )
        data = bad_images.png(51, 400, 400) if image is images["a"] else bad_images.png(52)
        write_partition(
            local_storage,
            day,
            [record],
            lambda r: data,
            [],
            [],
            {"inputs": 1, "accepted": 1, "duplicates": 0, "rejected": 0},
        )

    commit("2026-06-01", images["a"])
    commit("2026-06-03", images["b"])
    prior, owner = load_prior(local_storage, "2026-06-02", None, [images["a"].phash, images["b"].phash], 4)
    assert len(prior) == 1 and owner == {images["a"].image_id: "2026-06-01"}

    rows = [FeedRow("g.csv:1", "P9", "http://h/a"), FeedRow("g.csv:2", "P9", "http://h/b")]
    by_url = {
        "http://h/a": Processed(fetched("http://h/a"), images["a"]),
        "http://h/b": Processed(fetched("http://h/b"), images["b"]),
    }
    accepted, duplicates, _ = decide_outcomes(rows, by_url, prior, owner, "2026-06-02", IngestConfig(), NOW)
    assert [r["row_key"] for r in accepted] == ["g.csv:2"]  # b was committed later (06-03): it does not count
    assert [(d["row_key"], d["kind"], d["duplicate_of_partition"]) for d in duplicates] == [
        ("g.csv:1", "exact", "2026-06-01")
    ]


def test_colour_variant_is_kept_unless_the_prior_colour_is_unknown(local_storage, product_photos):
    """mp04 black and gray hash 2 bits apart. Against the black photo committed with schema v2 the gray
    one is a new image; against a smaller copy of it in a schema v1 partition (no colour signatures)
    only pHash can be compared, so the gray one is taken for a near duplicate, as before v2."""
    black = (product_photos / "mp04-black_main.jpg").read_bytes()
    gray = process_image((product_photos / "mp04-gray_main.jpg").read_bytes(), CleanConfig())
    row = FeedRow("f.csv:1", "MP04", "http://h/black")
    (record,), _, _ = decide_outcomes(
        [row],
        {row.image_url: Processed(fetched(row.image_url), process_image(black, CleanConfig()))},
        PriorHashes.empty(),
        {},
        "2026-06-01",
        IngestConfig(),
        NOW,
    )
    counts = {"inputs": 1, "accepted": 1, "duplicates": 0, "rejected": 0}
    write_partition(local_storage, "2026-06-01", [record], lambda r: black, [], [], counts)
    write_image_partition(local_storage, "2026-06-03", [product_photos / "mp04-black_main.jpg"], max_side=480)

    gray_row = FeedRow("g.csv:1", "MP04", "http://h/gray")
    by_url = {gray_row.image_url: Processed(fetched(gray_row.image_url), gray)}
    prior, owner = load_prior(local_storage, "2026-06-02", None, [gray.phash], 4)
    assert prior.has_color.tolist() == [True]
    accepted, duplicates, _ = decide_outcomes(
        [gray_row], by_url, prior, owner, "2026-06-02", IngestConfig(), NOW
    )
    assert [r["row_key"] for r in accepted] == ["g.csv:1"] and duplicates == []

    prior, owner = load_prior(local_storage, "2026-06-04", None, [gray.phash], 4)
    assert prior.has_color.tolist() == [True, False]  # 06-01 written with v2, 06-03 with v1
    accepted, duplicates, _ = decide_outcomes(
        [gray_row], by_url, prior, owner, "2026-06-04", IngestConfig(), NOW
    )
    assert accepted == []
    assert [(d["kind"], d["duplicate_of_partition"], d["hamming_distance"]) for d in duplicates] == [
        ("near", "2026-06-03", 2)
    ]


def test_accounting_violations_are_named():
    check_outcomes(["a", "b"], ["a"], ["b"])
    for outcomes, words in [
        ((["a"], []), "no outcome for ['b']"),
        ((["a", "b"], ["b"]), "several for ['b']"),
        ((["a", "b", "c"],), "unknown ['c']"),
    ]:
        with pytest.raises(OutcomeError, match=words.replace("[", r"\[").replace("]", r"\]")):
            check_outcomes(["a", "b"], *outcomes)
