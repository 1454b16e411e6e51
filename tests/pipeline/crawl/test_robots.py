"""robots.txt status policy and RFC 9309 matching, the per-origin cache, and X-Robots-Tag parsing."""

from __future__ import annotations

import asyncio

import pytest

from pipeline.crawl.robots import (
    RobotsCache,
    RobotsFile,
    parse_robots,
    product_token,
    robots_url,
    x_robots_forbids_ai,
)

AGENT = "CrispBot/0.1 (+https://github.com/crisp-images/crisp)"
RULES = "User-agent: *\nDisallow: /\n\nUser-agent: CrispBot\nAllow: /img/private/ok\nDisallow: /img/private\n"


def test_robots_url_keeps_scheme_host_and_port():
    assert robots_url("https://Shop.example:8443/a/b.jpg?x=1#f") == "https://shop.example:8443/robots.txt"
    assert robots_url("http://shop.example/a.jpg") == "http://shop.example/robots.txt"


def allowed(rules_text: str, path: str, agent: str = "crispbot") -> bool:
    return parse_robots(RobotsFile(200, rules_text)).allows(agent, f"http://s{path}")


def test_our_group_is_matched_by_product_token():
    rules = parse_robots(RobotsFile(200, RULES))
    assert rules.allows("crispbot", "http://s/img/a.jpg")
    assert not rules.allows("CrispBot", "http://s/img/private/b.jpg")
    assert rules.allows("crispbot", "http://s/img/private/ok.jpg")
    assert not rules.allows("otherbot", "http://s/img/a.jpg")


@pytest.mark.parametrize(
    ("value", "token"),
    [(AGENT, "crispbot"), ("OtherBot/1.0", "otherbot"), ("Google-Extended", "google-extended"), ("*", "*")],
)
def test_product_token(value, token):
    assert product_token(value) == token


@pytest.mark.parametrize("status", [404, 401, 403, 410, 500, 503, None])
def test_missing_or_unreachable_robots_allows_everything(status):
    rules = parse_robots(RobotsFile(status, "User-agent: *\nDisallow: /\n"))
    assert rules.allows("crispbot", "http://s/a.jpg")


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/a/b.jpg", False),
        ("/b.jpg", False),
        ("/a/b.JPG", True),  # paths are case-sensitive
        ("/a/b.jpg?x=1", True),  # the query is part of the path, so `$` no longer matches
        ("/b.jpeg", True),
        ("/a/b.jpg/c.png", True),
    ],
)
def test_wildcard_with_end_anchor(path, expected):
    assert allowed("User-agent: *\nDisallow: /*.jpg$\n", path) is expected


@pytest.mark.parametrize(
    ("rules", "path", "expected"),
    [
        ("Disallow: /fish", "/fish.html", False),
        ("Disallow: /fish", "/Fish.asp", True),
        ("Disallow: /fish*", "/fishheads/yummy.html", False),
        ("Disallow: /*.php", "/folder/filename.php?parameters", False),
        ("Disallow: /*.php", "/windows.PHP", True),
        ("Disallow: /fish*.php", "/fishheads/catfish.php?parameters", False),
        ("Disallow: /fish*.php", "/Fish.PHP", True),
        ("Disallow: /a*b*c$", "/a-x-b-y-c", False),
        ("Disallow: /a*b*c$", "/a-x-c-y-b", True),
        ("Disallow: /$", "/", False),
        ("Disallow: /$", "/a", True),
        ("Disallow: /*?", "/a?sessionid=1", False),
        ("Disallow: /*?", "/a", True),
        ("Disallow: *", "/anything", False),
        ("Disallow:", "/anything", True),  # an empty Disallow allows all
        ("Disallow: /", "/robots.txt", True),  # robots.txt itself is always allowed
    ],
)
def test_rfc9309_patterns(rules, path, expected):
    assert allowed(f"User-agent: *\n{rules}\n", path) is expected


@pytest.mark.parametrize(
    ("rules", "path", "expected"),
    [
        ("Disallow: /img\nAllow: /img/public", "/img/public/a.jpg", True),  # longer Allow overrides
        ("Allow: /img\nDisallow: /img/private", "/img/private/a.jpg", False),  # longer Disallow wins
        ("Disallow: /img\nAllow: /img", "/img/a.jpg", True),  # a tie goes to Allow
        ("Disallow: /*.jpg$\nAllow: /ok/img/*", "/ok/img/a.jpg", True),  # longer pattern, not rule order
        ("Allow: /ok/*\nDisallow: /ok/*.jpg$", "/ok/a.jpg", False),
        ("Disallow: /\nAllow: /$", "/", True),
        ("Disallow: /\nAllow: /$", "/page", False),
    ],
)
def test_most_specific_rule_wins(rules, path, expected):
    assert allowed(f"User-agent: *\n{rules}\n", path) is expected


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("/foo/bar/%E3%83%84", "/foo/bar/\u30c4", False),  # a non-ASCII path is compared %-encoded
        ("/foo/bar/\u30c4", "/foo/bar/%E3%83%84", False),  # ...and so is a non-ASCII pattern
        ("/foo/bar/%e3%83%84", "/foo/bar/%E3%83%84", False),  # hex case does not matter
        ("/foo/bar/%62%61%7A", "/foo/bar/baz", False),  # escaped unreserved characters are decoded
        ("/foo/bar/baz", "/foo/bar/%62%61%7A", False),
        ("/a%2Fb", "/a/b", True),  # an escaped reserved character stays distinct
        ("/a b", "/a%20b", False),
    ],
)
def test_percent_encoding_is_normalised(pattern, path, expected):
    assert allowed(f"User-agent: *\nDisallow: {pattern}\n", path) is expected


def test_percent_encoding_of_path_and_query():
    # non-ASCII is %-encoded, %7e is "~", %2f stays an escaped "/" (hex case aside)
    text = "User-agent: *\nDisallow: /%C3%A9t%C3%A9?q=~user&x=%2F\n"
    assert not allowed(text, "/\u00e9t\u00e9?q=%7euser&x=%2f")
    assert allowed(text, "/\u00e9t\u00e9?q=~user&x=/")


GROUPS = """\ufeff# comments and unknown lines are ignored
Sitemap: https://s/sitemap.xml
User-agent: OtherBot
User-agent: crispbot/2.0   # several user-agents share one group
Disallow: /shared

User-agent: *
Disallow: /

user-agent: CRISPBOT
crawl-delay: 5
disallow: /mine   # a second group for us is merged with the first
"""


@pytest.mark.parametrize(
    ("agent", "path", "expected"),
    [
        ("crispbot", "/shared/a.jpg", False),
        ("crispbot", "/mine/a.jpg", False),
        ("crispbot", "/other/a.jpg", True),  # our group applies, not "*"
        ("otherbot", "/shared/a.jpg", False),
        ("otherbot", "/mine/a.jpg", True),
        ("unknownbot", "/other/a.jpg", False),  # no group of its own: "*"
    ],
)
def test_group_selection_and_merging(agent, path, expected):
    assert allowed(GROUPS, path, agent) is expected


def test_our_empty_group_overrides_star_and_no_groups_allow_all():
    assert allowed("User-agent: *\nDisallow: /\n\nUser-agent: crispbot\nDisallow:\n", "/a.jpg")
    assert allowed("Disallow: /\n", "/a.jpg")  # rules outside any group are ignored
    assert not allowed("User-agent: googlebot\nUser-agent: *\nDisallow: /\n", "/a.jpg")


def test_rules_past_the_size_limit_are_ignored():
    text = "User-agent: *\n" + "# padding\n" * 60_000 + "Disallow: /\n"
    assert allowed(text, "/a.jpg")


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
