"""Robots policy: robots.txt per host (fetched once, cached) and `X-Robots-Tag: noai` headers.

In: a URL (or response header values) and the crawler's User-Agent. Out: whether the crawler may fetch
the URL / use the image. robots.txt is loaded through an injected async `RobotsLoader` (the fetch
module supplies one that goes through the address guard and the rate limiter) and parsed here.

Matching implements RFC 9309 by hand: `urllib.robotparser` ignores `*` and `$` (so `Disallow: /*.jpg$`
would allow every JPEG) and Protego, the usual RFC 9309 parser, is not installable offline. The group
whose user-agent is our product token ("crispbot", case-insensitive; several such groups are merged)
applies, else the "*" group, else none. In it the longest matching Allow/Disallow pattern wins, Allow
on a tie; `*` matches any characters and a final `$` anchors the end; the path (with its query) and the
patterns are compared in one %-encoding (§2.2.2); an empty Disallow allows all; /robots.txt is always
allowed.

Status policy (RFC 9309 for 2xx/4xx; deliberately lenient for errors):
- 2xx: the file's rules apply.
- 4xx (404, 401, 403, 429 ...): no rules, everything is allowed.
- 5xx, timeout or connection error: treated as allow-all. RFC 9309 says "assume complete disallow";
  Crisp fetches only images a catalog feed points at, the image fetch itself is retried and
  rate-limited, and a disallow-all would reject a whole host's feed for a transient robots error.
"""

from __future__ import annotations

import asyncio
import re
import string
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from yarl import URL

# Directives that take a value after a colon, so "name: value" is not a user-agent prefix.
_VALUED_DIRECTIVES = frozenset({"unavailable_after", "max-snippet", "max-image-preview", "max-video-preview"})
AI_DIRECTIVES = frozenset({"noai", "noimageai"})
ROBOTS_MAX_BYTES = 500 * 1024  # Google's limit: rules past 500 KiB are ignored
_PRODUCT_TOKEN = re.compile(r"[A-Za-z_-]+")  # RFC 9309 §2.2.1 product-token characters
_PERCENT_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")


@dataclass(frozen=True, slots=True)
class RobotsFile:
    """What fetching /robots.txt produced: an HTTP status (None when unreachable) and the text."""

    status: int | None
    text: str = ""
    error: str = ""


RobotsLoader = Callable[[str], Awaitable[RobotsFile]]


@dataclass(frozen=True, slots=True)
class RobotsRules:
    """Allow/Disallow rules per lower-case user-agent token: (is_allow, normalised pattern) pairs."""

    groups: dict[str, tuple[tuple[bool, str], ...]]

    def allows(self, agent: str, url: str) -> bool:
        """True when these rules let product token `agent` fetch `url`."""
        rules = self.groups.get(agent.lower(), self.groups.get("*", ()))
        parts = urlsplit(url)
        if parts.path == "/robots.txt":
            return True
        path = normalise_path((parts.path or "/") + (f"?{parts.query}" if parts.query else ""))
        # Longest pattern wins; on equal length True (allow) sorts above False (disallow).
        return max(((len(p), allow) for allow, p in rules if _matches(p, path)), default=(0, True))[1]


def product_token(user_agent: str) -> str:
    """The lower-case product token of a User-Agent or robots.txt user-agent value ("CrispBot/0.1" -> "crispbot")."""
    match = _PRODUCT_TOKEN.match(user_agent.strip())
    return match[0].lower() if match else user_agent.strip().lower()


def normalise_path(path: str) -> str:
    """`path` with non-ASCII and control octets %-encoded and %-escapes of unreserved characters decoded."""

    def unescape(match: re.Match[str]) -> str:
        char = chr(int(match[1], 16))
        return char if char in _UNRESERVED else f"%{match[1].upper()}"

    return _PERCENT_ESCAPE.sub(unescape, quote(path, safe=string.punctuation))


def _matches(pattern: str, path: str) -> bool:
    """Whether `path` starts with `pattern`, where `*` matches anything and a final `$` anchors the end."""
    anchored = pattern.endswith("$")
    head, *middle_and_tail = (pattern[:-1] if anchored else pattern).split("*")
    if not path.startswith(head):
        return False
    if not middle_and_tail:
        return not anchored or len(path) == len(head)
    position = len(head)
    *middle, tail = middle_and_tail
    for piece in middle:  # the leftmost occurrence of each piece leaves the most room for the rest
        found = path.find(piece, position)
        if found < 0:
            return False
        position = found + len(piece)
    if anchored:
        return path.endswith(tail) and len(path) - len(tail) >= position
    return path.find(tail, position) >= 0


def robots_url(url: str) -> str:
    """The robots.txt URL that governs `url` (same scheme, host and port)."""
    return str(URL(url).origin().with_path("/robots.txt"))


def parse_robots(robots: RobotsFile) -> RobotsRules:
    """The rules `robots` implies under the status policy above (no rules unless the status is 2xx)."""
    if robots.status is None or not 200 <= robots.status < 300:
        return RobotsRules({})
    groups: dict[str, list[tuple[bool, str]]] = {}
    agents: list[str] = []  # user-agents of the group being read
    reading_rules = False
    for line in robots.text[:ROBOTS_MAX_BYTES].lstrip("\ufeff").splitlines():
        key, colon, value = line.split("#", 1)[0].partition(":")
        key, value = key.strip().lower(), value.strip()
        if not colon:
            continue
        if key == "user-agent":
            if reading_rules:  # a user-agent line after rules starts the next group
                agents, reading_rules = [], False
            agents.append(product_token(value))
            groups.setdefault(agents[-1], [])
        elif key in ("allow", "disallow") and agents:
            reading_rules = True
            if value:  # an empty pattern matches nothing ("Disallow:" allows all)
                for agent in agents:
                    groups[agent].append((key == "allow", normalise_path(value)))
    return RobotsRules({agent: tuple(rules) for agent, rules in groups.items()})


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
