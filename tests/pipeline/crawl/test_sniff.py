"""Magic-byte sniffing on real files and on tiny images written by Pillow."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from pipeline.crawl.sniff import IMAGE_FORMATS, VIDEO_FORMATS, sniff_image_format, sniff_video_format


def encoded(fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 3), (200, 10, 10)).save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("pillow_format", "expected"),
    [("JPEG", "jpeg"), ("PNG", "png"), ("GIF", "gif"), ("WEBP", "webp"), ("BMP", "bmp"), ("TIFF", "tiff")],
)
def test_every_supported_format_is_recognised(pillow_format, expected):
    assert sniff_image_format(encoded(pillow_format)) == expected
    assert expected in IMAGE_FORMATS


def test_real_files(photo_bytes, shared_data):
    assert sniff_image_format(photo_bytes) == "jpeg"
    assert sniff_image_format((shared_data / "sr_benchmarks" / "Set5" / "baby.png").read_bytes()) == "png"


def test_big_endian_tiff():
    assert sniff_image_format(b"MM\x00*\x00\x00\x00\x08" + bytes(16)) == "tiff"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xff\xd8",  # too short to tell
        b"<!DOCTYPE html><html><body>404</body></html>",
        b'{"error": "not found"}',
        b"BMW 320i for sale, very good condition",  # starts with BM but is no bitmap
        b"RIFF\x00\x00\x00\x00WAVEfmt ",  # RIFF, but audio
        b"%PDF-1.7\n",
        b"\x00\x00\x00\x1cftypavif",  # AVIF is not a supported format
    ],
)
def test_non_images_are_none(data):
    assert sniff_image_format(data) is None


@pytest.mark.parametrize(
    ("container", "codec", "expected"),
    [
        ("mp4", "libx264", "mp4"),
        ("mov", "libx264", "mov"),
        ("webm", "libvpx-vp9", "webm"),
        ("matroska", "libx264", "mkv"),
        ("avi", "mpeg4", "avi"),
    ],
)
def test_video_containers_written_by_ffmpeg_are_recognised(tmp_path, container, codec, expected):
    from tests.support.videos import moving_frames, write_video

    path = write_video(tmp_path / f"clip.{container}", moving_frames(3), codec=codec, container=container)
    assert sniff_video_format(path.read_bytes()) == expected
    assert expected in VIDEO_FORMATS
    assert sniff_image_format(path.read_bytes()) is None


def test_images_and_text_are_not_videos(photo_bytes):
    for data in (
        photo_bytes,
        encoded("PNG"),
        encoded("WEBP"),
        b"<html>ftyp</html>",
        b"RIFF\x00\x00\x00\x00WAVEfmt ",
    ):
        assert sniff_video_format(data) is None
