"""Fetch one image URL: http(s) with retries, redirects, guards and limits; file:// and s3:// via fsspec.

In: a `FetchRequest` and a `FetchContext` (one per crawl: aiohttp session, address guard, robots cache,
host limiter, config). Out: a `FetchResult` that is either ok (bytes + sniffed image format) or carries
the `Reason` it failed with; untrusted input never raises.

For http(s), each try walks the redirect chain by hand (allow_redirects=False): every hop is admitted
by scheme, address guard and robots.txt, requested inside its host's limiter slot, and the chain ends
on a loop (redirect_loop) or after `max_redirects` hops (too_many_redirects). A 2xx body is refused on
`X-Robots-Tag: noai`, on a Content-Length over the limit, when the streamed bytes pass the limit, or when
its first bytes are not an image; a short body is `truncated`. Timeouts, connection errors, truncated
bodies, 5xx, 408 and 429 are retried with jittered exponential back-off that honours Retry-After; an
attempt that ran past the total timeout (a slow drip) only when `retry_total_timeout` says so. A URL
that still ends in a timeout, 5xx or connection error counts against its host's circuit breaker
(`HostBreaker`); once that opens, the host's remaining URLs fail as host_unavailable before any request.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial

import aiohttp
from yarl import URL

from pipeline.crawl.address_guard import AddressGuard, BlockedAddressError, GuardedResolver
from pipeline.crawl.breaker import HostBreaker
from pipeline.crawl.config import CrawlConfig
from pipeline.crawl.rate_limit import HostLimiter, backoff_delay, parse_retry_after
from pipeline.crawl.records import FetchRequest, FetchResult
from pipeline.crawl.robots import ROBOTS_MAX_BYTES, RobotsCache, RobotsFile, RobotsLoader, x_robots_forbids_ai
from pipeline.crawl.sniff import SNIFF_BYTES, sniff_image_format, sniff_video_format
from pipeline.crawl.source_url import HTTP_SCHEMES, parse_source_url
from pipeline.crawl.storage_source import STORAGE_SCHEMES, read_storage_object
from schemas.reasons import Reason

log = logging.getLogger(__name__)

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
ACCEPT = "image/avif,image/webp,image/png,image/jpeg,image/*;q=0.9,*/*;q=0.5"


@dataclass(slots=True)
class Outcome:
    """One try's result before it becomes a `FetchResult`; `location` is set on a redirect."""

    reason: Reason | None = None
    detail: str = ""
    status: int | None = None
    final_url: str = ""
    content: bytes | None = None
    media_format: str | None = None
    retryable: bool = False
    retry_after_s: float | None = None
    location: URL | None = None


@dataclass(slots=True)
class FetchContext:
    """Everything one crawl shares between fetches; build it with `open_fetch_context`."""

    config: CrawlConfig
    session: aiohttp.ClientSession
    guard: AddressGuard
    limiter: HostLimiter
    rng: random.Random = field(default_factory=random.Random)
    robots: RobotsCache | None = None
    breaker: HostBreaker = field(default_factory=lambda: HostBreaker(0))


@asynccontextmanager
async def open_fetch_context(
    config: CrawlConfig, robots_files: MutableMapping[str, RobotsFile] | None = None
) -> AsyncIterator[FetchContext]:
    """One pooled aiohttp session whose resolver only connects to addresses the guard allowed.

    `robots_files` (robots.txt URL -> what fetching it gave) is read before and filled after each
    robots.txt fetch, so crawls that follow each other in one process (a Dask worker's batches) fetch a
    host's robots.txt once, not once a batch."""
    guard = AddressGuard(config.allow_hosts)
    connector = aiohttp.TCPConnector(
        limit=config.global_concurrency,
        limit_per_host=0,  # the HostLimiter enforces per-host limits, including back-off pauses
        resolver=GuardedResolver(guard),
        use_dns_cache=False,  # the guard caches verdicts; a second cache could bypass it
    )
    timeout = aiohttp.ClientTimeout(
        total=config.total_timeout_s, sock_connect=config.connect_timeout_s, sock_read=config.read_timeout_s
    )
    async with aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        headers={"User-Agent": config.user_agent, "Accept": ACCEPT},
        cookie_jar=aiohttp.DummyCookieJar(),
        trust_env=False,  # no proxies from the environment: the guard must see the real destination
    ) as session:
        limiter = HostLimiter(config.per_host_concurrency, config.per_host_rate)
        context = FetchContext(config, session, guard, limiter, breaker=HostBreaker(config.breaker_failures))
        if config.respect_robots:
            load = partial(_load_robots, context)
            context.robots = RobotsCache(
                config.user_agent, load if robots_files is None else _memo(load, robots_files)
            )
        yield context


async def fetch_one(request: FetchRequest, context: FetchContext) -> FetchResult:
    """Fetch `request.url` under `context`'s limits and policies; never raises for bad input."""
    started = time.perf_counter()
    parsed, refusal, why = parse_source_url(request.url)
    attempts = 0
    if refusal is not None:
        outcome = Outcome(refusal, why)
    else:
        if parsed.scheme.lower() in STORAGE_SCHEMES:
            attempt: Callable[[], Awaitable[Outcome]] = partial(_read_storage, request.url, context)
        else:
            attempt = partial(_follow, context, parsed, _read_image, context.config.respect_robots)
        outcome, attempts = await _with_retries(context, attempt)
        if outcome.final_url and parsed.scheme.lower() in HTTP_SCHEMES:
            host = URL(outcome.final_url).host_port_subcomponent
            context.breaker.record(host, outcome.reason, outcome.status, outcome.detail)
    elapsed = time.perf_counter() - started
    if log.isEnabledFor(logging.DEBUG):
        log.debug(
            "fetch %s: %s%s, %d attempt(s), %.2f s",
            request.url, "ok" if outcome.reason is None else f"{outcome.reason} ({outcome.detail})",
            f", HTTP {outcome.status}" if outcome.status is not None else "", attempts, elapsed,
        )  # fmt: skip
    return FetchResult(
        key=request.key,
        url=request.url,
        final_url=outcome.final_url or request.url,
        ok=outcome.reason is None,
        content=outcome.content if outcome.reason is None else None,
        media_format=outcome.media_format if outcome.reason is None else None,
        reason=None if outcome.reason is None else outcome.reason.value,
        detail=outcome.detail,
        http_status=outcome.status,
        attempts=attempts,
        elapsed_s=elapsed,
        fetched_at=datetime.now(UTC),
    )


async def _with_retries(
    context: FetchContext, attempt: Callable[[], Awaitable[Outcome]]
) -> tuple[Outcome, int]:
    config = context.config
    tries = 0
    while True:
        tries += 1
        outcome = await attempt()
        if outcome.reason is None or not outcome.retryable or tries > config.max_retries:
            return outcome, tries
        delay = backoff_delay(
            tries, config.backoff_base_s, config.backoff_max_s, context.rng, outcome.retry_after_s
        )
        if delay is None:
            outcome.detail += (
                f" (Retry-After {outcome.retry_after_s:.0f} s exceeds backoff_max_s; not retried)"
            )
            return outcome, tries
        log.debug(
            "retry %d/%d of %s in %.2f s after %s (%s)",
            tries, config.max_retries, outcome.final_url, delay, outcome.reason, outcome.detail,
        )  # fmt: skip
        await asyncio.sleep(delay)


async def _read_storage(url: str, context: FetchContext) -> Outcome:
    reason, detail, data = await asyncio.to_thread(
        read_storage_object, url, context.config.storage_options, context.config.max_body_bytes
    )
    if reason is not None:
        return Outcome(reason, detail, final_url=url, retryable=reason == Reason.CONNECTION_ERROR)
    return _sniffed(data, url, None, "", context.config.accept_videos)


Hop = Callable[[FetchContext, aiohttp.ClientResponse], Awaitable[Outcome]]


async def _follow(context: FetchContext, start: URL, hop: Hop, check_robots: bool) -> Outcome:
    """Request `start` and follow redirects by hand, admitting every hop; `hop` reads the final response."""
    visited, current, redirects = {start.with_fragment(None)}, start, 0
    while True:
        outcome = await _admit(context, current, check_robots) or await _request(context, current, hop)
        outcome.final_url = str(current)
        if outcome.location is None:
            return outcome
        target = outcome.location.with_fragment(None)
        if target in visited:
            return Outcome(
                Reason.REDIRECT_LOOP, f"redirect loop: {current} -> {target}", outcome.status, str(current)
            )
        if redirects >= context.config.max_redirects:
            detail = f"more than {context.config.max_redirects} redirects (next: {target})"
            return Outcome(Reason.TOO_MANY_REDIRECTS, detail, outcome.status, str(current))
        visited.add(target)
        current, redirects = target, redirects + 1


async def _admit(context: FetchContext, url: URL, check_robots: bool) -> Outcome | None:
    """None when `url` may be requested, else the refusal (scheme, circuit breaker, address guard, robots)."""
    if url.scheme.lower() not in HTTP_SCHEMES or not url.host:
        return Outcome(Reason.UNSUPPORTED_SCHEME, f"redirected to unsupported URL {url}")
    if (unavailable := context.breaker.refusal(url.host_port_subcomponent)) is not None:
        return Outcome(Reason.HOST_UNAVAILABLE, unavailable)
    verdict = await context.guard.check(url.host)
    if not verdict.allowed:
        return Outcome(verdict.reason, verdict.detail)
    if check_robots and context.robots is not None and not await context.robots.allows(str(url)):
        return Outcome(
            Reason.ROBOTS_DISALLOWED, f"robots.txt disallows {url.path} for {context.config.robots_agent}"
        )
    return None


async def _request(context: FetchContext, url: URL, hop: Hop) -> Outcome:
    """One GET inside the host's limiter slot; transport failures become Outcomes."""
    try:
        async with (
            context.limiter.slot(url.host),
            context.session.get(url, allow_redirects=False) as response,
        ):
            if response.status in REDIRECT_STATUSES:
                location = response.headers.get("Location")
                if not location:
                    return Outcome(
                        Reason.HTTP_CLIENT_ERROR,
                        f"{_http_detail(response)} without Location",
                        response.status,
                    )
                return Outcome(status=response.status, location=response.url.join(URL(location)))
            return await hop(context, response)
    except aiohttp.ClientConnectorDNSError as error:
        if isinstance(error.os_error, BlockedAddressError):
            return Outcome(Reason.BLOCKED_ADDRESS, error.os_error.verdict.detail)
        return Outcome(Reason.DNS_ERROR, f"cannot resolve {url.host}: {error.os_error}")
    except aiohttp.ServerTimeoutError as error:  # connect or read (silence) timeout
        return Outcome(Reason.TIMEOUT, f"timed out: {error or type(error).__name__}", retryable=True)
    except TimeoutError:  # aiohttp's total timer raises a bare one: the attempt ran past total_timeout_s
        config = context.config
        detail = f"timed out: whole attempt past total_timeout_s {config.total_timeout_s:g} s (slow response)"
        return Outcome(Reason.TIMEOUT, detail, retryable=config.retry_total_timeout)
    except aiohttp.ClientPayloadError as error:
        return Outcome(Reason.TRUNCATED, f"body cut short: {error}", retryable=True)
    except (aiohttp.InvalidURL, ValueError) as error:
        return Outcome(Reason.FEED_BAD_URL, f"bad URL {url}: {error}")
    except aiohttp.ClientSSLError as error:
        return Outcome(Reason.CONNECTION_ERROR, f"TLS error: {error}")
    except (aiohttp.ClientError, OSError) as error:
        return Outcome(Reason.CONNECTION_ERROR, f"{type(error).__name__}: {error}", retryable=True)


def _http_detail(response: aiohttp.ClientResponse) -> str:
    return f"HTTP {response.status} {response.reason or ''}".rstrip()


async def _read_image(context: FetchContext, response: aiohttp.ClientResponse) -> Outcome:
    """Map a non-redirect response to an Outcome, streaming the body under the size limit."""
    config, status = context.config, response.status
    if status in (408, 429) or status >= 500:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if retry_after:
            context.limiter.pause(response.url.host, min(retry_after, config.backoff_max_s))
        reason = {408: Reason.TIMEOUT, 429: Reason.HTTP_RATE_LIMITED}.get(status, Reason.HTTP_SERVER_ERROR)
        return Outcome(reason, _http_detail(response), status, retryable=True, retry_after_s=retry_after)
    if not 200 <= status < 300:
        return Outcome(Reason.HTTP_CLIENT_ERROR, _http_detail(response), status)
    tags = response.headers.getall("X-Robots-Tag", [])
    if config.respect_x_robots_tag and x_robots_forbids_ai(tags, config.robots_agent):
        return Outcome(Reason.X_ROBOTS_NOAI, f"X-Robots-Tag: {'; '.join(tags)}", status)
    declared = response.content_length
    if declared is not None and declared > config.max_body_bytes:
        return Outcome(
            Reason.TOO_LARGE, f"Content-Length {declared} > max_body_bytes {config.max_body_bytes}", status
        )
    chunks, size, complete = [], 0, True
    async for chunk in response.content.iter_any():
        size += len(chunk)
        if size > config.max_body_bytes:
            return Outcome(Reason.TOO_LARGE, f"body passed max_body_bytes {config.max_body_bytes}", status)
        chunks.append(chunk)
        if len(chunks) == 1 and size >= SNIFF_BYTES and _media_format(chunk, config.accept_videos) is None:
            complete = False  # not an image (or video): no need to download the rest
            break
    body = b"".join(chunks)
    identity = response.headers.get("Content-Encoding", "identity").lower() == "identity"
    if complete and identity and declared is not None and size != declared:
        return Outcome(Reason.TRUNCATED, f"got {size} of {declared} bytes", status, retryable=True)
    return _sniffed(body, str(response.url), status, response.content_type, config.accept_videos)


def _media_format(head: bytes, accept_videos: bool) -> str | None:
    found = sniff_image_format(head)
    return found if found is not None or not accept_videos else sniff_video_format(head)


def _sniffed(body: bytes, url: str, status: int | None, content_type: str, accept_videos: bool) -> Outcome:
    media_format = _media_format(body, accept_videos)
    if media_format is None:
        advertised = f" (Content-Type {content_type})" if content_type else ""
        return Outcome(Reason.NOT_AN_IMAGE, f"body starts with {body[:16]!r}{advertised}", status, url)
    return Outcome(None, "ok", status, url, content=body, media_format=media_format)


def _memo(load: RobotsLoader, files: MutableMapping[str, RobotsFile]) -> RobotsLoader:
    async def load_once(robots_txt_url: str) -> RobotsFile:
        if robots_txt_url not in files:
            files[robots_txt_url] = await load(robots_txt_url)
        return files[robots_txt_url]

    return load_once


async def _load_robots(context: FetchContext, robots_txt_url: str) -> RobotsFile:
    """GET /robots.txt through the same guard, limiter and manual redirects as images (no robots check)."""
    outcome = await _follow(context, URL(robots_txt_url), _read_robots, check_robots=False)
    if outcome.status is None or outcome.reason not in (None, Reason.HTTP_CLIENT_ERROR):
        return RobotsFile(None, error=outcome.detail)
    return RobotsFile(outcome.status, (outcome.content or b"").decode("utf-8", errors="replace"))


async def _read_robots(context: FetchContext, response: aiohttp.ClientResponse) -> Outcome:
    if not 200 <= response.status < 300:
        reason = Reason.HTTP_CLIENT_ERROR if response.status < 500 else Reason.HTTP_SERVER_ERROR
        return Outcome(reason, _http_detail(response), response.status)
    chunks, size = [], 0
    async for chunk in response.content.iter_any():
        chunks.append(chunk)
        size += len(chunk)
        if size >= ROBOTS_MAX_BYTES:
            break  # rules past the limit are ignored anyway
    return Outcome(None, "ok", response.status, content=b"".join(chunks)[:ROBOTS_MAX_BYTES])
