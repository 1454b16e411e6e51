"""The loopback test server itself: files, query strings, routes, counters, misbehaviour."""

from __future__ import annotations

import http.client
import urllib.error
import urllib.request

import pytest

from tests.support.http_server import LoopbackHTTPServer, Route


def get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, dict(error.headers), error.read()


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def test_serves_files_ignoring_query_strings_and_counts(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"\xff\xd8\xffjpeg")
    (tmp_path.parent / "secret.txt").write_text("outside")
    with LoopbackHTTPServer(tmp_path) as server:
        assert server.base_url.startswith("http://127.0.0.1:")
        for query in ("", "?v=1", "?v=2", "?v=2"):
            status, headers, body = get(server.url("/a.jpg" + query))
            assert (status, body, headers["Content-Type"]) == (200, b"\xff\xd8\xffjpeg", "image/jpeg")
        assert server.hits("/a.jpg") == 4 and server.target_hits("/a.jpg?v=2") == 2
        assert get(server.url("/missing.jpg"))[0] == 404
        assert get(server.url("/../secret.txt"))[0] == 404
        assert get(server.url("/%2e%2e/secret.txt"))[0] == 404
        server.reset_hits()
        assert server.total_hits() == 0


def test_status_sequence_headers_and_robots():
    with LoopbackHTTPServer() as server:
        url = server.add_route(
            "/x", Route(statuses=(500, 429, 200), body=b"ok", status_headers={429: {"Retry-After": "1"}})
        )
        answers = [get(url) for _ in range(4)]
        assert [a[0] for a in answers] == [500, 429, 200, 200]
        assert answers[1][1]["Retry-After"] == "1" and "Retry-After" not in answers[2][1]
        assert answers[2][2] == b"ok"
        server.set_robots("User-agent: *\nDisallow: /\n")
        assert get(server.url("/robots.txt"))[2] == b"User-agent: *\nDisallow: /\n"


def test_redirect_chain_and_truncated_body():
    with LoopbackHTTPServer() as server:
        first = server.add_redirect_chain("/c", hops=3, target="/end")
        opener = urllib.request.build_opener(NoRedirect)
        with pytest.raises(urllib.error.HTTPError) as hop:
            opener.open(first, timeout=5)
        hop.value.close()
        assert hop.value.code == 302 and hop.value.headers["Location"] == "/c/1"
        with pytest.raises(urllib.error.HTTPError) as last:
            opener.open(server.url("/c/2"), timeout=5)
        last.value.close()
        assert last.value.headers["Location"] == "/end"
        assert server.hits("/c/0") == server.hits("/c/2") == 1 and server.hits("/c/1") == 0

        server.add_route("/short", Route(body=b"12345", declared_length=50))
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        connection.request("GET", "/short")
        response = connection.getresponse()
        assert response.getheader("Content-Length") == "50"
        with pytest.raises(http.client.IncompleteRead):
            response.read()
        connection.close()


def test_drip_sends_slowly_and_stops_with_the_server():
    server = LoopbackHTTPServer().start()
    server.add_route("/drip", Route(body=b"abcdef", drip_interval_s=0.01, drip_chunk=2))
    assert get(server.url("/drip"))[2] == b"abcdef"
    server.add_route("/forever", Route(body=bytes(100), drip_interval_s=10))
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    connection.request("GET", "/forever")
    assert connection.getresponse().status == 200
    server.stop()  # must not wait for the dripping handler
    connection.close()
    assert server.peak_in_flight() >= 1
