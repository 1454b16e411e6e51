"""Content sniffing: name the image or video container from the first bytes of a body.

In: bytes (the whole body or at least its first `SNIFF_BYTES`). Out: `sniff_image_format`: "jpeg", "png",
"gif", "webp", "bmp" or "tiff"; `sniff_video_format`: "mp4", "mov", "webm", "mkv" or "avi"; None when the
bytes are not one of these. Servers mislabel files (HTML error
pages served as image/jpeg, images as application/octet-stream), so the crawler trusts these magic
numbers and treats Content-Type as advisory only. Sniffing proves the container, not that the image
decodes; the clean step does the full decode.
"""

from __future__ import annotations

SNIFF_BYTES = 32
IMAGE_FORMATS = ("jpeg", "png", "gif", "webp", "bmp", "tiff")
VIDEO_FORMATS = ("mp4", "mov", "webm", "mkv", "avi")
_EBML_MAGIC = b"\x1a\x45\xdf\xa3"  # Matroska and WebM; the DocType inside the EBML header tells them apart
_LEGACY_QUICKTIME_BOXES = (b"moov", b"wide")  # QuickTime files older than the ftyp box

# BITMAPINFOHEADER sizes of the BMP variants Pillow reads (OS/2 v1 and v2, Windows v3 to v5).
_BMP_DIB_HEADER_SIZES = frozenset({12, 16, 40, 52, 56, 64, 108, 124})


def _is_bmp(head: bytes) -> bool:
    # "BM" alone also starts ordinary text ("BMW ..."), so require a plausible DIB header size too.
    if len(head) < 18 or head[:2] != b"BM":
        return False
    return int.from_bytes(head[14:18], "little") in _BMP_DIB_HEADER_SIZES


def sniff_image_format(data: bytes) -> str | None:
    """The image format `data` starts with, or None (HTML, JSON, truncated or unknown bytes)."""
    head = bytes(data[:SNIFF_BYTES])
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if len(head) >= 16 and head[:4] == b"RIFF" and head[8:12] == b"WEBP" and head[12:15] == b"VP8":
        return "webp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if _is_bmp(head):
        return "bmp"
    return None


def sniff_video_format(data: bytes) -> str | None:
    """The video container `data` starts with, or None. Proves the container only: `pipeline.video.probe`
    decodes the stream."""
    head = bytes(data[:SNIFF_BYTES])
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return "mov" if head[8:12] == b"qt  " else "mp4"
    if len(head) >= 8 and head[4:8] in _LEGACY_QUICKTIME_BOXES:
        return "mov"
    if head.startswith(_EBML_MAGIC):
        return "webm" if b"webm" in bytes(data[:64]) else "mkv"
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "avi"
    return None
