"""Loopback HTTP server for tests and benchmarks: real files plus scripted misbehaviour.

In: an optional directory (served at /<name>, query strings ignored, so one file answers under many
URLs) and scripted `Route`s per path: a status sequence (500 then 200), extra headers per status
(Retry-After, X-Robots-Tag), redirects, a body sent slowly (drip), a body shorter than its
Content-Length (truncated), any body with any content type, robots.txt. Out: a running server on
127.0.0.1 with an ephemeral port, its URLs, request counts per path and per full target, and the
peak number of requests answered at once.

Stdlib `ThreadingHTTPServer` in a background thread, HTTP/1.1 keep-alive, files cached in memory
after their first read, request logging silenced. Use as a context manager:

    with LoopbackHTTPServer(photos_dir) as server:
        server.add_route("/flaky.jpg", Route(statuses=(500, 200), body=jpeg, content_type="image/jpeg"))
        urls = [server.url("/a.jpg?v=1"), server.url("/flaky.jpg")]
"""

from __future__ import annotations

import mimetypes
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit


@dataclass(frozen=True)
class Route:
    """A scripted answer for one path (query strings ignored).

    statuses: the status of the 1st, 2nd ... request; the last one repeats. Non-2xx statuses send a
    short text body unless `error_body` is given. headers: sent with every answer; status_headers:
    extra headers for one status only (e.g. {429: {"Retry-After": "1"}}). location: Location header
    (give a 3xx status). drip_interval_s: send the body `drip_chunk` bytes at a time with this pause
    in between. declared_length: announce this Content-Length (larger than the body = truncated;
    the connection is closed after the short body).
    """

    statuses: Sequence[int] = (200,)
    body: bytes = b""
    content_type: str = "application/octet-stream"
    headers: Mapping[str, str] = field(default_factory=dict)
    status_headers: Mapping[int, Mapping[str, str]] = field(default_factory=dict)
    location: str | None = None
    error_body: bytes | None = None
    drip_interval_s: float = 0.0
    drip_chunk: int = 1
    declared_length: int | None = None

    def __post_init__(self) -> None:
        if not self.statuses:
            raise ValueError("Route.statuses needs at least one status")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so clients pool connections as against real servers
    disable_nagle_algorithm = True
    timeout = 30  # idle keep-alive connections free their thread eventually
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        """Silenced: a benchmark makes thousands of requests."""

    def do_GET(self) -> None:
        owner = self.server.owner
        path = unquote(urlsplit(self.path).path)
        number = owner._record(self.path, path)
        self._answering = True
        try:
            route = owner._routes.get(path)
            if route is not None:
                self._answer_route(route, number)
                return
            body = owner._file_bytes(path)
            if body is None:
                self._send(404, b"not found", "text/plain")
            else:
                self._send(200, body, mimetypes.guess_type(path)[0] or "application/octet-stream")
        finally:
            self._stop_counting()

    def _stop_counting(self) -> None:
        """Leave the in-flight count, once per request, *before* the last byte goes out: a client that
        has the whole answer may send its next request at once, and must not be counted twice."""
        if self._answering:
            self._answering = False
            self.server.owner._finished()

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str,
        headers: Mapping[str, str] | None = None,
        declared_length: int | None = None,
        final: bool = True,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body) if declared_length is None else declared_length))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if final:
            self._stop_counting()
        self.end_headers()
        self.wfile.write(body)

    def _answer_route(self, route: Route, number: int) -> None:
        status = route.statuses[min(number, len(route.statuses)) - 1]
        headers = dict(route.headers)
        headers.update(route.status_headers.get(status, {}))
        if route.location is not None:
            headers["Location"] = route.location
        if not 200 <= status < 300:
            try:
                phrase = HTTPStatus(status).phrase
            except ValueError:
                phrase = ""
            body = route.error_body if route.error_body is not None else f"{status} {phrase}".encode()
            self._send(status, body, "text/plain", headers)
            return
        if route.declared_length is not None:
            self.close_connection = True  # the client can only notice the short body if we hang up
            self._send(status, route.body, route.content_type, headers, route.declared_length)
            return
        if route.drip_interval_s <= 0:
            self._send(status, route.body, route.content_type, headers)
            return
        self._send(status, b"", route.content_type, headers, len(route.body), final=False)
        self.close_connection = True
        stopping = self.server.owner._stopping
        for start in range(0, len(route.body), route.drip_chunk):
            if stopping.wait(route.drip_interval_s):
                return
            if start + route.drip_chunk >= len(route.body):
                self._stop_counting()
            self.wfile.write(route.body[start : start + route.drip_chunk])
            self.wfile.flush()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # do not wait for clients' idle keep-alive connections on shutdown
    request_queue_size = 1024  # a crawler opens dozens of connections at once
    owner: LoopbackHTTPServer

    def handle_error(self, request: object, client_address: object) -> None:
        """Clients hanging up mid-answer (timeouts under test) are expected: stay quiet."""


class LoopbackHTTPServer:
    """A threaded HTTP server on 127.0.0.1:<ephemeral port>; see the module docstring."""

    def __init__(self, directory: Path | str | None = None) -> None:
        self.directory = Path(directory).resolve() if directory is not None else None
        self._routes: dict[str, Route] = {}
        self._files: dict[str, bytes] = {}
        self._hits: Counter[str] = Counter()
        self._targets: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._in_flight = 0
        self._peak_in_flight = 0
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # lifecycle
    def start(self) -> LoopbackHTTPServer:
        if self._server is not None:
            raise RuntimeError("LoopbackHTTPServer already started")
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        self._server = None

    def __enter__(self) -> LoopbackHTTPServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # addresses
    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("LoopbackHTTPServer is not running; use it as a context manager")
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        """Absolute URL of `path` ("/a.jpg?x=1") on this server."""
        return self.base_url + (path if path.startswith("/") else "/" + path)

    # scripting
    def add_route(self, path: str, route: Route | None = None, **fields: object) -> str:
        """Script the answers for `path` (a Route, or Route's fields as keywords); returns its URL."""
        route = route if route is not None else Route(**fields)
        with self._lock:
            self._routes[path] = route
            self._hits.pop(path, None)
        return self.url(path)

    def set_robots(self, text: str) -> None:
        """Serve `text` as /robots.txt (without this, /robots.txt is a 404 unless the directory has one)."""
        self.add_route("/robots.txt", Route(body=text.encode(), content_type="text/plain"))

    def add_redirect_chain(self, prefix: str, hops: int, target: str, status: int = 302) -> str:
        """`hops` redirects prefix/0 -> prefix/1 -> ... -> target; returns the first URL."""
        for hop in range(hops):
            following = f"{prefix}/{hop + 1}" if hop + 1 < hops else target
            self.add_route(f"{prefix}/{hop}", Route(statuses=(status,), location=following))
        return self.url(f"{prefix}/0")

    # counting
    def hits(self, path: str) -> int:
        """Requests so far for `path`, whatever their query strings."""
        with self._lock:
            return self._hits[path]

    def target_hits(self, target: str) -> int:
        """Requests so far for exactly `target` (path plus query string)."""
        with self._lock:
            return self._targets[target]

    def total_hits(self) -> int:
        with self._lock:
            return sum(self._hits.values())

    def peak_in_flight(self) -> int:
        """The most requests the server was answering at one moment since start or `reset_hits`."""
        with self._lock:
            return self._peak_in_flight

    def reset_hits(self) -> None:
        """Zero the counters; status sequences of routes start over too."""
        with self._lock:
            self._hits.clear()
            self._targets.clear()
            self._peak_in_flight = self._in_flight

    # internals used by the handler threads
    def _record(self, target: str, path: str) -> int:
        with self._lock:
            self._targets[target] += 1
            self._hits[path] += 1
            self._in_flight += 1
            self._peak_in_flight = max(self._peak_in_flight, self._in_flight)
            return self._hits[path]

    def _finished(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def _file_bytes(self, path: str) -> bytes | None:
        if self.directory is None:
            return None
        cached = self._files.get(path)
        if cached is not None:
            return cached
        candidate = (self.directory / path.lstrip("/")).resolve()
        if not (candidate.is_relative_to(self.directory) and candidate.is_file()):
            return None
        data = self._files[path] = candidate.read_bytes()  # racing threads store the same bytes
        return data
