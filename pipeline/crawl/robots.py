"""Robots policy: robots.txt per host (fetched once, cached) and `X-Robots-Tag: noai` headers.

In: a URL (or response header values) and the crawler's User-Agent. Out: whether the crawler may fetch
the URL / use the image. robots.txt is loaded through an injected async `RobotsLoader` (the fetch
module supplies one that goes through the address guard and the rate limiter) and parsed here.

Matching is Protego's RFC 9309 implementation (`*`, a final `$`, longest match wins, Allow on a tie,
%-encoding normalised on both sides, groups of one user-agent merged, /robots.txt always allowed).
`urllib.robotparser` is not used: before Python 3.14 it ignores `*` and `$`, so `Disallow: /*.jpg$`
would allow every JPEG. Protego is asked with our product token ("crispbot"): the group whose
user-agent starts at a token boundary in it applies, the longest such (so a "crisp" group applies when
there is no "crispbot" one), else the "*" group, else none.
Before parsing, each user-agent value is cut to its product token as RFC 9309 §2.2.1 defines it
("User-agent: CrispBot/2.0" is a group for "crispbot"), which Protego would otherwise compare whole.

Fetching, the status policy and the size limit are ours (Protego leaves them to the caller):
- 2xx: the file's rules apply; rules past 500 KiB are ignored.
- 4xx (404, 401, 403, 429 ...): no rules, everything is allowed (RFC 9309).
- 5xx, timeout or connection error: treated as allow-all. RFC 9309 says "assume complete disallow";
  Crisp fetches only images a catalog feed points at, the image fetch itself is retried and
  rate-limited, and a disallow-all would reject a whole host's feed for a transient robots error.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from protego import Protego
from yarl import URL

# Directives that take a value after a colon, so "name: value" is not a user-agent prefix.
_VALUED_DIRECTIVES = frozenset({"unavailable_after", "max-snippet", "max-image-preview", "max-video-preview"})
AI_DIRECTIVES = frozenset({"noai", "noimageai"})
ROBOTS_MAX_BYTES = 500 * 1024  # Google's limit: rules past 500 KiB are ignored
_PRODUCT_TOKEN = re.compile(r"[A-Za-z_-]+")  # RFC 9309 §2.2.1 product-token characters
# A user-agent line up to the end of its value's product token, and what follows up to a comment.
_USER_AGENT_VALUE = re.compile(r"(?im)^([ \t]*user-agent[ \t]*:[ \t]*[A-Za-z_-]+)[^#\r\n]*")


@dataclass(frozen=True, slots=True)
class RobotsFile:
    """What fetching /robots.txt produced: an HTTP status (None when unreachable) and the text."""

    status: int | None
    text: str = ""
    error: str = ""


RobotsLoader = Callable[[str], Awaitable[RobotsFile]]


@dataclass(frozen=True, slots=True)
class RobotsRules:
    """A parsed robots.txt; `parser` None means no rules (everything is allowed)."""

    parser: Protego | None = None

    def allows(self, agent: str, url: str) -> bool:
        """True when these rules let `agent` (a product token or a User-Agent) fetch `url`."""
        return self.parser is None or self.parser.can_fetch(url, product_token(agent))


def product_token(user_agent: str) -> str:
    """The lower-case product token of a User-Agent or robots.txt user-agent value ("CrispBot/0.1" -> "crispbot")."""
    match = _PRODUCT_TOKEN.match(user_agent.strip())
    return match[0].lower() if match else user_agent.strip().lower()


def robots_url(url: str) -> str:
    """The robots.txt URL that governs `url` (same scheme, host and port)."""
    return str(URL(url).origin().with_path("/robots.txt"))


def parse_robots(robots: RobotsFile) -> RobotsRules:
    """The rules `robots` implies under the status policy above (no rules unless the status is 2xx)."""
    if robots.status is None or not 200 <= robots.status < 300:
        return RobotsRules()
    text = robots.text[:ROBOTS_MAX_BYTES].lstrip("\ufeff")
    return RobotsRules(Protego.parse(_USER_AGENT_VALUE.sub(r"\1", text)))


class RobotsCache:
    """One parsed robots.txt per origin for the life of a crawl; concurrent first uses share one load."""

    def __init__(self, user_agent: str, loader: RobotsLoader) -> None:
        self._agent = product_token(user_agent)
        self._loader = loader
        self._rules: dict[str, asyncio.Future[RobotsRules]] = {}

    async def allows(self, url: str) -> bool:
        """True when robots.txt of `url`'s origin lets the crawler fetch it."""
        origin = robots_url(url)
        pending = self._rules.get(origin)
        if pending is None:
            pending = asyncio.ensure_future(self._load(origin))
            self._rules[origin] = pending
        rules = pending.result() if pending.done() else await asyncio.shield(pending)
        return rules.allows(self._agent, url)

    async def _load(self, origin: str) -> RobotsRules:
        return parse_robots(await self._loader(origin))


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
