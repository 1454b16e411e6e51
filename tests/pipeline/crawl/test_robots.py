"""robots.txt status policy and matching, the per-origin cache, and X-Robots-Tag parsing."""

from __future__ import annotations

import asyncio

import pytest

from pipeline.crawl.robots import RobotsCache, RobotsFile, build_parser, robots_url, x_robots_forbids_ai

AGENT = "CrispBot/0.1 (+https://github.com/crisp-images/crisp)"
RULES = "User-agent: *\nDisallow: /\n\nUser-agent: CrispBot\nAllow: /img/private/ok\nDisallow: /img/private\n"


def test_robots_url_keeps_scheme_host_and_port():
    assert robots_url("https://Shop.example:8443/a/b.jpg?x=1#f") == "https://shop.example:8443/robots.txt"
    assert robots_url("http://shop.example/a.jpg") == "http://shop.example/robots.txt"


def test_our_group_is_matched_by_product_token():
    parser = build_parser(RobotsFile(200, RULES))
    assert parser.can_fetch(AGENT, "http://s/img/a.jpg")
    assert not parser.can_fetch(AGENT, "http://s/img/private/b.jpg")
    assert parser.can_fetch(AGENT, "http://s/img/private/ok.jpg")
    assert not parser.can_fetch("OtherBot/1.0", "http://s/img/a.jpg")


@pytest.mark.parametrize("status", [404, 401, 403, 410, 500, 503, None])
def test_missing_or_unreachable_robots_allows_everything(status):
    parser = build_parser(RobotsFile(status, "User-agent: *\nDisallow: /\n"))
    assert parser.can_fetch(AGENT, "http://s/a.jpg")


def test_cache_loads_each_origin_once():
    loads: list[str] = []

    async def loader(url: str) -> RobotsFile:
        loads.append(url)
        await asyncio.sleep(0.01)
        return RobotsFile(200, "User-agent: crispbot\nDisallow: /no\n")

    async def ask():
        cache = RobotsCache(AGENT, loader)
        urls = [f"http://a.example/{p}/{n}.jpg" for n in range(10) for p in ("yes", "no")]
        answers = await asyncio.gather(*(cache.allows(url) for url in urls))
        answers.append(await cache.allows("http://b.example/no/1.jpg"))
        return answers

    answers = asyncio.run(ask())
    assert answers[:20] == [True, False] * 10 and answers[20] is False
    assert loads == ["http://a.example/robots.txt", "http://b.example/robots.txt"]


@pytest.mark.parametrize(
    ("values", "forbidden"),
    [
        (["noai"], True),
        (["NoImageAI"], True),
        (["noindex, noai"], True),
        (["noindex", "noimageai"], True),
        (["crispbot: noai"], True),
        (["CrispBot: noindex, noimageai"], True),
        (["googlebot: noai"], False),
        (["noindex, nofollow"], False),
        (["none"], False),
        (["unavailable_after: 25 Jun 2010 15:00:00 PST"], False),
        (["noai, unavailable_after: 25 Jun 2010"], True),
        ([], False),
    ],
)
def test_x_robots_tag(values, forbidden):
    assert x_robots_forbids_ai(values, "crispbot") is forbidden
