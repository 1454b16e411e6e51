"""Videos through a real ingest: feed rows pointing at real clips and hostile files on a loopback HTTP
server, probed on a Dask LocalCluster, stored in the partition's shards with a row in videos.parquet, and
deduplicated (a remux exactly, a heavily compressed copy nearly) within the day and against earlier days."""

from __future__ import annotations

import csv
import hashlib
import shutil

import numpy as np
import pytest

from pipeline.crawl import CrawlConfig
from pipeline.ingest.config import IngestConfig
from pipeline.ingest.read import read_image, read_partition
from pipeline.ingest.run import ingest_partition
from pipeline.ingest.split import assign_split
from pipeline.reference_data import reference_clip
from pipeline.shards import read_member
from pipeline.storage import Storage
from pipeline.video.probe import probe_video
from schemas.image_index import phash_from_int64
from schemas.reasons import Reason
from tests.support.http_server import LoopbackHTTPServer
from tests.support.videos import moving_frames, remux, write_audio_only, write_video

pytestmark = pytest.mark.slow
DAY, NEXT_DAY = "2026-05-01", "2026-05-02"


@pytest.fixture(scope="module")
def media(tmp_path_factory, product_photos):
    folder = tmp_path_factory.mktemp("media")
    shutil.copy(next(iter(sorted(product_photos.glob("*.jpg")))), folder / "photo.jpg")
    shutil.copy(reference_clip("carphone_pristine"), folder / "spin.mp4")
    shutil.copy(reference_clip("carphone_distorted"), folder / "spin_small.mp4")
    remux(folder / "spin.mp4", folder / "spin_remux.mkv")
    cut = write_video(folder / "cut_src.mp4", moving_frames(40, 96, 80), faststart=True).read_bytes()
    (folder / "cut.mp4").write_bytes(cut[: len(cut) // 2])
    write_video(folder / "bomb.mp4", [np.full((4096, 4096, 3), 128, np.uint8)])
    write_audio_only(folder / "sound.mp4")
    return folder


def _feed(path, rows):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sku", "url", "title"])
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def config() -> IngestConfig:
    return IngestConfig(crawl=CrawlConfig(allow_hosts=["127.0.0.1"], max_retries=0), workers=2)


def test_videos_are_probed_stored_deduplicated_and_rejected_with_reasons(media, tmp_path, config):
    storage = Storage(f"file://{tmp_path / 'root'}")
    with LoopbackHTTPServer(media) as server:
        url = server.url
        feed = _feed(
            tmp_path / "feed.csv",
            [
                ("P1", url("/photo.jpg"), "shoe"),
                ("P1", url("/spin.mp4"), "shoe spin"),
                ("P2", url("/spin_remux.mkv"), "same frames, other container"),
                ("P3", url("/spin_small.mp4"), "the same clip at 7 KB"),
                ("P4", url("/cut.mp4"), "cut short"),
                ("P4", url("/bomb.mp4"), "4096 x 4096"),
                ("P4", url("/sound.mp4"), "audio only"),
            ],
        )
        summary = ingest_partition(str(feed), DAY, storage, config)
        assert (summary.inputs, summary.accepted, summary.accepted_videos) == (7, 1, 1)
        assert (summary.duplicates_exact, summary.duplicates_near) == (1, 1)
        assert summary.rejected == {
            Reason.VIDEO_NO_STREAM: 1, Reason.VIDEO_TOO_LARGE: 1, Reason.VIDEO_TRUNCATED: 1
        }  # fmt: skip
        part = read_partition(storage, DAY)
        assert part.manifest.counts["accepted_videos"] == 1
        (video,) = part.videos.to_pylist()
        source = (media / "spin.mp4").read_bytes()
        probe = probe_video(source)
        assert (video["product_id"], video["container"], video["codec"]) == ("P1", "mp4", "h264")
        assert (video["width"], video["height"], video["frames"], video["audio_codec"]) == (
            176,
            144,
            120,
            None,
        )
        assert video["video_id"] == probe.video_id and video["split"] == assign_split("P1", config.split)
        assert tuple(phash_from_int64(h) for h in video["keyframe_hashes"]) == probe.keyframe_hashes
        assert read_image(storage, part.manifest, video) == source  # stored exactly as fetched
        shard = f"images/{DAY}/{part.manifest.file(video['shard']).path}"
        assert (
            hashlib.sha256(read_member(storage, shard, video["offset"], video["size"])).hexdigest()
            == (video["bytes_sha256"])
        )
        duplicates = {d["url"].rsplit("/", 1)[1]: d for d in part.duplicates.to_pylist()}
        assert duplicates["spin_remux.mkv"]["kind"] == "exact"
        assert duplicates["spin_small.mp4"]["kind"] == "near"
        assert {d["duplicate_of"] for d in duplicates.values()} == {video["video_id"]}
        assert part.index.num_rows == 1 and part.index["product_id"].to_pylist() == ["P1"]

        # the same feed again: nothing changed, no new attempt
        assert ingest_partition(str(feed), DAY, storage, config).unchanged

        # a later day listing the clip under a new URL: a duplicate of the earlier day's video
        later = _feed(tmp_path / "later.csv", [("P9", url("/spin.mp4?v=2"), "again")])
        next_day = ingest_partition(str(later), NEXT_DAY, storage, config)
        assert (next_day.accepted_videos, next_day.duplicates_exact) == (0, 1)
        (dup,) = read_partition(storage, NEXT_DAY).duplicates.to_pylist()
        assert (dup["duplicate_of"], dup["duplicate_of_partition"]) == (video["video_id"], DAY)


def test_videos_can_be_turned_away_by_the_crawler(media, tmp_path, config):
    storage = Storage(f"file://{tmp_path / 'root'}")
    no_videos = config.model_copy(update={"crawl": config.crawl.model_copy(update={"accept_videos": False})})
    with LoopbackHTTPServer(media) as server:
        feed = _feed(
            tmp_path / "feed.csv", [("P1", server.url("/photo.jpg"), ""), ("P1", server.url("/spin.mp4"), "")]
        )
        summary = ingest_partition(str(feed), DAY, storage, no_videos)
    assert (summary.accepted, summary.accepted_videos, summary.rejected) == (1, 0, {Reason.NOT_AN_IMAGE: 1})
    part = read_partition(storage, DAY)
    assert part.videos.num_rows == 0 and "accepted_videos" not in part.manifest.counts
    assert not any(f.name == "videos.parquet" for f in part.manifest.files)


def test_a_retry_keeps_the_committed_videos(media, tmp_path, config):
    from tests.support.http_server import Route

    storage = Storage(f"file://{tmp_path / 'root'}")
    with LoopbackHTTPServer(media) as server:
        photo = (media / "photo.jpg").read_bytes()
        server.add_route("/flaky.jpg", Route(statuses=(500, 200), body=photo, content_type="image/jpeg"))
        feed = _feed(
            tmp_path / "feed.csv", [("P1", server.url("/spin.mp4"), ""), ("P2", server.url("/flaky.jpg"), "")]
        )
        first = ingest_partition(str(feed), DAY, storage, config)
        assert (first.accepted_videos, first.rejected) == (1, {Reason.HTTP_SERVER_ERROR: 1})
        retried = ingest_partition(str(feed), DAY, storage, config, retry_failed=True)
    assert (retried.accepted, retried.accepted_videos, retried.rejected) == (1, 1, {})
    assert read_partition(storage, DAY).videos.to_pylist()[0]["product_id"] == "P1"
