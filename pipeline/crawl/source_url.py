"""Source URL validation: decide whether a feed's image URL can be fetched at all, before any I/O.

In: the URL string from a feed row. Out: (parsed yarl URL, None, "") for http, https, file and s3
URLs, or (None, reason, detail) with `feed_bad_url` (not a string, control characters, unparsable,
no scheme, no valid host, bad port, s3 without a bucket) or `unsupported_scheme` (ftp:, data:,
javascript: ...). Host names are checked after IDNA encoding, so "bücher.example" passes and
"exa mple.com" or "shop..example" do not.
"""

from __future__ import annotations

import re

from yarl import URL

from pipeline.crawl.address_guard import parse_ip
from pipeline.crawl.storage_source import STORAGE_SCHEMES
from schemas.reasons import Reason

HTTP_SCHEMES = frozenset({"http", "https"})
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
_HOST_NAME = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)(\.(?!-)[a-z0-9_-]{1,63}(?<!-))*\.?$", re.IGNORECASE)


def parse_source_url(url: str) -> tuple[URL | None, Reason | None, str]:
    """The parsed URL, or the reason and a message saying why it cannot be fetched."""
    if not isinstance(url, str) or _CONTROL_CHARACTERS.search(url.strip()):
        return None, Reason.FEED_BAD_URL, f"not a URL string: {url!r:.200}"
    try:
        parsed = URL(url.strip())
        scheme, host, _ = parsed.scheme.lower(), parsed.raw_host, parsed.port  # a bad port raises here
    except (ValueError, TypeError) as error:
        return None, Reason.FEED_BAD_URL, f"malformed URL: {error}"
    if not scheme:
        return None, Reason.FEED_BAD_URL, "URL has no scheme"
    if scheme not in HTTP_SCHEMES | STORAGE_SCHEMES:
        return None, Reason.UNSUPPORTED_SCHEME, f"scheme {scheme!r} is not http, https, file or s3"
    if scheme in HTTP_SCHEMES and not (host and (parse_ip(host) is not None or _HOST_NAME.match(host))):
        return None, Reason.FEED_BAD_URL, f"http(s) URL has no valid host: {host!r}"
    if scheme == "s3" and not host:
        return None, Reason.FEED_BAD_URL, "s3 URI has no bucket"
    return parsed, None, ""
