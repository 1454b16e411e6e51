"""Crawl: fetch catalog image URLs politely and safely into bytes, or a reason code per URL.

`crawl` / `crawl_all` fetch many requests; `fetch_one` fetches one inside an `open_fetch_context`.
"""

from pipeline.crawl.address_guard import AddressGuard, AddressVerdict, GuardedResolver, why_blocked
from pipeline.crawl.breaker import HostBreaker
from pipeline.crawl.config import DEFAULT_USER_AGENT, CrawlConfig
from pipeline.crawl.crawl import crawl, crawl_all, crawl_indexed
from pipeline.crawl.fetch import FetchContext, fetch_one, open_fetch_context
from pipeline.crawl.rate_limit import HostLimiter, backoff_delay, parse_retry_after
from pipeline.crawl.records import FetchRequest, FetchResult
from pipeline.crawl.robots import RobotsCache, RobotsFile, RobotsRules, parse_robots, x_robots_forbids_ai
from pipeline.crawl.sniff import IMAGE_FORMATS, VIDEO_FORMATS, sniff_image_format, sniff_video_format
from pipeline.crawl.source_url import parse_source_url
from pipeline.crawl.storage_source import read_storage_object

__all__ = [
    "DEFAULT_USER_AGENT",
    "IMAGE_FORMATS",
    "VIDEO_FORMATS",
    "AddressGuard",
    "AddressVerdict",
    "CrawlConfig",
    "FetchContext",
    "FetchRequest",
    "FetchResult",
    "GuardedResolver",
    "HostBreaker",
    "HostLimiter",
    "RobotsCache",
    "RobotsFile",
    "RobotsRules",
    "backoff_delay",
    "crawl",
    "crawl_all",
    "crawl_indexed",
    "fetch_one",
    "open_fetch_context",
    "parse_retry_after",
    "parse_robots",
    "parse_source_url",
    "read_storage_object",
    "sniff_image_format",
    "sniff_video_format",
    "why_blocked",
    "x_robots_forbids_ai",
]
