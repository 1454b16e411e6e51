"""Reason codes: why an input row was rejected.

In: nothing. Out: the `Reason` enum (string values stored in the reject ledger) and
`is_retryable(code)`, which `--retry-failed` uses to pick the rows worth fetching again.
Every reject row carries exactly one of these codes; a new failure mode gets a new code here.
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    # feed rows
    FEED_MISSING_FIELD = "feed_missing_field"
    FEED_BAD_URL = "feed_bad_url"
    FEED_BAD_ROW = "feed_bad_row"
    FEED_ROW_TOO_LONG = "feed_row_too_long"  # a row or one of its fields over the feed's FeedLimits
    # fetching
    UNSUPPORTED_SCHEME = "unsupported_scheme"
    DNS_ERROR = "dns_error"
    BLOCKED_ADDRESS = "blocked_address"  # private, loopback, link-local or metadata address
    ROBOTS_DISALLOWED = "robots_disallowed"
    X_ROBOTS_NOAI = "x_robots_noai"
    HTTP_CLIENT_ERROR = "http_client_error"  # 4xx other than 408/429
    HTTP_SERVER_ERROR = "http_server_error"  # 5xx after retries
    HTTP_RATE_LIMITED = "http_rate_limited"  # 429 after retries
    TIMEOUT = "timeout"
    CONNECTION_ERROR = "connection_error"
    HOST_UNAVAILABLE = "host_unavailable"  # not tried: the host's circuit breaker opened this crawl
    TRUNCATED = "truncated"  # body shorter than Content-Length
    TOO_LARGE = "too_large"  # body over the size limit
    REDIRECT_LOOP = "redirect_loop"
    TOO_MANY_REDIRECTS = "too_many_redirects"
    NOT_AN_IMAGE = "not_an_image"  # magic bytes say it is neither a supported image nor a video
    SOURCE_NOT_FOUND = "source_not_found"  # file:// or s3:// object missing
    # cleaning
    DECODE_ERROR = "decode_error"
    DECOMPRESSION_BOMB = "decompression_bomb"
    TOO_SMALL = "too_small"
    BAD_ASPECT_RATIO = "bad_aspect_ratio"
    LOW_QUALITY = "low_quality"  # the learned quality model scored it under ingest.min_quality
    # pairs
    FLAT_TILE = "flat_tile"  # an HR tile with no content (blank background): nothing to learn or label
    # matte composites (pipeline/matte)
    MATTE_NOT_WHITE_BACKGROUND = "matte_not_white_background"  # the border is not studio white
    MATTE_EMPTY = "matte_empty"  # no product, or a product that fills the frame: no background to cut
    MATTE_UNRELIABLE = "matte_unreliable"  # a soft matte: white product on white, heavy shadow
    # videos (pipeline/video)
    NOT_A_VIDEO = "not_a_video"  # magic bytes say it is not an MP4 / MOV / WebM / MKV / AVI container
    VIDEO_NO_STREAM = "video_no_stream"  # a container without a video stream (audio only, empty)
    VIDEO_UNSUPPORTED_CODEC = "video_unsupported_codec"
    VIDEO_TOO_LARGE = "video_too_large"  # frame or total decoded pixels over the caps: a decoding bomb
    VIDEO_TOO_LONG = "video_too_long"  # duration or frame count over the caps
    VIDEO_NO_FRAMES = "video_no_frames"  # a video stream that decodes to no frame
    VIDEO_TRUNCATED = "video_truncated"  # fewer frames decode than the container declares


RETRYABLE: frozenset[Reason] = frozenset(
    {
        Reason.DNS_ERROR,
        Reason.HTTP_SERVER_ERROR,
        Reason.HTTP_RATE_LIMITED,
        Reason.TIMEOUT,
        Reason.CONNECTION_ERROR,
        Reason.HOST_UNAVAILABLE,
        Reason.TRUNCATED,
    }
)


def is_retryable(code: str) -> bool:
    """True when a later fetch of the same URL may succeed."""
    return Reason(code) in RETRYABLE
