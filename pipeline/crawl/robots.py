"""Robots policy: robots.txt per host (fetched once, cached) and `X-Robots-Tag: noai` headers.

In: a URL (or response header values) and the crawler's User-Agent. Out: whether the crawler may fetch
the URL / use the image. robots.txt is loaded through an injected async `RobotsLoader` (the fetch
module supplies one that goes through the address guard and the rate limiter) and parsed with
`urllib.robotparser`, so matching follows the stdlib: the group whose name is contained in our
product token ("crispbot"), else "*"; first matching rule wins.

Status policy (RFC 9309 for 2xx/4xx; deliberately lenient for errors):
- 2xx: the file's rules apply.
- 4xx (404, 401, 403, 429 ...): no rules, everything is allowed.
- 5xx, timeout or connection error: treated as allow-all. RFC 9309 says "assume complete disallow";
  Crisp fetches only images a catalog feed points at, the image fetch itself is retried and
  rate-limited, and a disallow-all would reject a whole host's feed for a transient robots error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from urllib.robotparser import RobotFileParser

from yarl import URL

# Directives that take a value after a colon, so "name: value" is not a user-agent prefix.
_VALUED_DIRECTIVES = frozenset({"unavailable_after", "max-snippet", "max-image-preview", "max-video-preview"})
AI_DIRECTIVES = frozenset({"noai", "noimageai"})
ROBOTS_MAX_BYTES = 500 * 1024  # Google's limit: rules past 500 KiB are ignored


@dataclass(frozen=True, slots=True)
class RobotsFile:
    """What fetching /robots.txt produced: an HTTP status (None when unreachable) and the text."""

    status: int | None
    text: str = ""
    error: str = ""


RobotsLoader = Callable[[str], Awaitable[RobotsFile]]


def robots_url(url: str) -> str:
    """The robots.txt URL that governs `url` (same scheme, host and port)."""
    return str(URL(url).origin().with_path("/robots.txt"))


def build_parser(robots: RobotsFile) -> RobotFileParser:
    """A parser holding the rules `robots` implies under the status policy above."""
    parser = RobotFileParser()
    if robots.status is not None and 200 <= robots.status < 300:
        parser.parse(robots.text[:ROBOTS_MAX_BYTES].splitlines())
    else:
        parser.allow_all = True
    return parser


def robots_allows(parser: RobotFileParser, user_agent: str, url: str) -> bool:
    """True when `parser`'s rules let `user_agent` fetch `url`."""
    return parser.can_fetch(user_agent, url)


class RobotsCache:
    """One parsed robots.txt per origin for the life of a crawl; concurrent first uses share one load."""

    def __init__(self, user_agent: str, loader: RobotsLoader) -> None:
        self._user_agent = user_agent
        self._loader = loader
        self._parsers: dict[str, asyncio.Future[RobotFileParser]] = {}

    async def allows(self, url: str) -> bool:
        """True when robots.txt of `url`'s origin lets the crawler fetch it."""
        origin = robots_url(url)
        pending = self._parsers.get(origin)
        if pending is None:
            pending = asyncio.ensure_future(self._load(origin))
            self._parsers[origin] = pending
        parser = pending.result() if pending.done() else await asyncio.shield(pending)
        return robots_allows(parser, self._user_agent, url)

    async def _load(self, origin: str) -> RobotFileParser:
        return build_parser(await self._loader(origin))


def x_robots_forbids_ai(header_values: Iterable[str], robots_agent: str) -> bool:
    """True when an `X-Robots-Tag` value says `noai` or `noimageai` for everyone or for our agent.

    A value may start with a user-agent prefix ("CrispBot: noai, noimageai"); such a value applies
    only to that agent. `robots_agent` is our lower-case product token, e.g. "crispbot".
    """
    for value in header_values:
        head, colon, rest = value.partition(":")
        target = head.strip().lower()
        if colon and target and target not in _VALUED_DIRECTIVES and not any(c in target for c in ", "):
            if target != robots_agent:
                continue
            value = rest
        directives = {token.strip().lower() for token in value.split(",")}
        if directives & AI_DIRECTIVES:
            return True
    return False
