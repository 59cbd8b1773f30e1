"""A real HTTP/1.1 server on a loopback address, serving feeds the way publishers' servers do.

One job: let tests exercise the fetcher over real sockets. It answers GET/HEAD with real
validators (strong ETag, Last-Modified), 304s, gzip, redirects, fixed error statuses (with
Retry-After), slow, trickling, hanging and reset connections and endless bodies, and it
records every request (method, path, headers, time, status sent, bytes sent, connection id)
plus peak concurrency, so tests assert on what the client actually did.

What it does not do: no TLS, no HTTP/2, no mocking of client internals, no feed content of
its own (tests supply bodies; only the ``huge_mib`` filler is generated), no persistence, and
it never binds anything but a 127.0.0.0/8 address.

Usage::

    with FeedServer() as server:
        res = server.put("/feed.xml", RSS_TEXT)
        httpx.get(server.url("/feed.xml"), headers={"If-None-Match": res.etag})  # -> 304
        assert server.count("/feed.xml") == 1
"""

from __future__ import annotations

import contextlib
import email.utils
import gzip as gziplib
import hashlib
import http.server
import socket
import socketserver
import struct
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "DEFAULT_CACHE_CONTROL",
    "DEFAULT_CONTENT_TYPE",
    "MIB",
    "FeedServer",
    "RequestRecord",
    "Resource",
    "iter_huge",
]

MIB = 1024 * 1024
DEFAULT_CONTENT_TYPE = "application/rss+xml; charset=utf-8"
DEFAULT_CACHE_CONTROL = "max-age=300"
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

_HUGE_PREFIX = (
    b'<?xml version="1.0" encoding="utf-8"?>\n'
    b'<rss version="2.0"><channel><title>huge</title><link>http://127.0.0.1/</link>\n'
)
_HUGE_LINE = b"<!-- padding padding padding padding padding padding padding -->\n"
_HUGE_BLOCK = (_HUGE_LINE * (65536 // len(_HUGE_LINE) + 1))[:65536]


class _Stopped(Exception):
    """Raised inside a handler when the server stops while a response is being delayed."""


@dataclass
class RequestRecord:
    """One request as the server saw it. ``status``/``bytes_sent``/``outcome`` fill in as
    the response goes out; call ``FeedServer.wait_idle()`` before asserting on them."""

    method: str
    path: str  # path without the query string, e.g. "/feed.xml"
    target: str  # request target exactly as sent, e.g. "/feed.xml?x=1"
    headers: dict[str, str]  # lower-cased names; repeated headers joined with ", "
    time: float  # time.time() when the request head had been read
    connection_id: int  # one per TCP connection: equal ids mean keep-alive reuse
    http_version: str  # "HTTP/1.1"
    status: int | None = None  # status sent; None when none was (hang, reset)
    bytes_sent: int = 0  # body bytes written (after gzip, before chunk framing)
    outcome: str = "pending"  # "ok" | "client_gone" | "hang" | "reset" | "stopped"
    finished: float | None = None  # time.time() when handling ended

    def header(self, name: str, default: str | None = None) -> str | None:
        """A request header, case-insensitively."""
        return self.headers.get(name.lower(), default)

    @property
    def query(self) -> str:
        return urlsplit(self.target).query


@dataclass(frozen=True)
class Resource:
    """What ``FeedServer.put`` registered at one path (returned so tests can read
    ``etag`` and ``last_modified``)."""

    path: str
    body: bytes
    content_type: str
    headers: tuple[tuple[str, str], ...]
    etag: str | None  # e.g. '"3f2a9c0d1e2b4a56"', None when not sent
    last_modified: str | None  # the Last-Modified header value, None when not sent
    last_modified_ts: float | None  # epoch seconds, for If-Modified-Since comparisons
    status: int | None
    redirect_to: str | None
    redirect_status: int
    delay: float
    trickle: tuple[float, int] | None
    hang: bool
    reset: bool
    huge_mib: float | None
    chunked: bool
    gzip: bool
    ignore_conditional: bool
    cache_control: str | None
    gzipped: bytes | None

    @property
    def huge_bytes(self) -> int:
        return int((self.huge_mib or 0) * MIB)


def _http_date(ts: float) -> str:
    return email.utils.formatdate(ts, usegmt=True)


def _parse_http_date(value: str) -> float | None:
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _accepts_gzip(values: list[str]) -> bool:
    q_gzip: float | None = None
    q_star: float | None = None
    for value in values:
        for part in value.split(","):
            token, *params = part.strip().split(";")
            coding = token.strip().lower()
            q = 1.0
            for param in params:
                key, _, raw = param.strip().partition("=")
                if key.strip().lower() == "q":
                    try:
                        q = float(raw)
                    except ValueError:
                        q = 0.0
            if coding in ("gzip", "x-gzip"):
                q_gzip = q
            elif coding == "*":
                q_star = q
    if q_gzip is not None:
        return q_gzip > 0
    return q_star is not None and q_star > 0


def _opaque(tag: str) -> str:
    return tag.strip().removeprefix("W/")


def _merge_headers(
    defaults: list[tuple[str, str]], extra: tuple[tuple[str, str], ...]
) -> list[tuple[str, str]]:
    """Defaults, minus any header the resource overrides, plus the resource's headers."""
    overridden = {name.lower() for name, _ in extra}
    return [(n, v) for n, v in defaults if n.lower() not in overridden] + list(extra)


def _norm_path(path: str) -> str:
    return path if path.startswith("/") else "/" + path


class _HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    feed: FeedServer

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), i.e. a reverse DNS lookup: skip it.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        # Like ThreadingMixIn.process_request, but registers socket and thread with the
        # FeedServer *before* the thread runs, so stop() can always unblock it.
        thread = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name="feedserver-conn",
            daemon=True,
        )
        self.feed._connection_opened(request, thread)
        thread.start()

    def shutdown_request(self, request: Any) -> None:
        try:
            super().shutdown_request(request)
        finally:
            self.feed._connection_closed(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if exc is not None:
            self.feed.errors.append(exc)
            if not isinstance(exc, OSError):
                super().handle_error(request, client_address)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "feedserver/1.0"
    sys_version = ""
    disable_nagle_algorithm = True
    server: _HTTPServer

    _record: RequestRecord | None = None

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def send_response(self, code: int, message: str | None = None) -> None:
        if self._record is not None:
            self._record.status = code
        super().send_response(code, message)

    def do_GET(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    # -- plumbing ---------------------------------------------------------------------

    def _serve(self) -> None:
        feed = self.server.feed
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        record = RequestRecord(
            method=self.command,
            path=urlsplit(self.path).path or "/",
            target=self.path,
            headers=headers,
            time=time.time(),
            connection_id=feed._connection_id(self.connection),
            http_version=self.request_version,
        )
        self._record = record
        feed._begin(record)
        try:
            self._respond(feed, record)
            if record.outcome == "pending":
                record.outcome = "ok"
        except _Stopped:
            record.outcome = "stopped"
            self.close_connection = True
        except OSError:  # broken pipe, reset by peer, or socket shut down by stop()
            record.outcome = "client_gone"
            self.close_connection = True
        finally:
            self._record = None
            feed._end(record)

    def _wait(self, seconds: float) -> None:
        if seconds > 0 and self.server.feed._stopping.wait(seconds):
            raise _Stopped

    def _send_head(self, status: int, headers: list[tuple[str, str]]) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()

    def _write(self, record: RequestRecord, data: bytes, chunked: bool) -> None:
        if not data:
            return
        if chunked:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        else:
            self.wfile.write(data)
        record.bytes_sent += len(data)

    def _simple(
        self, record: RequestRecord, status: int, body: bytes, headers: list[tuple[str, str]]
    ) -> None:
        self._send_head(status, [*headers, ("Content-Length", str(len(body)))])
        if self.command != "HEAD":
            self._write(record, body, chunked=False)

    # -- behaviours -------------------------------------------------------------------

    def _respond(self, feed: FeedServer, record: RequestRecord) -> None:
        res = feed._lookup(record.target, record.path)
        if res is not None:
            self._wait(res.delay)
        if res is None:
            self._simple(
                record, 404, b"not found\n", [("Content-Type", "text/plain; charset=utf-8")]
            )
            return
        if res.hang:
            record.outcome = "hang"
            feed._stopping.wait()
            self.close_connection = True
            return
        if res.reset:
            record.outcome = "reset"
            self.close_connection = True
            self.wfile.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: " + res.content_type.encode() + b"\r\nContent-Le"
            )
            # SO_LINGER 0: close() sends RST instead of FIN.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            return
        if self.command not in ("GET", "HEAD"):
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            self._simple(
                record,
                405,
                b"method not allowed\n",
                [("Allow", "GET, HEAD"), ("Content-Type", "text/plain; charset=utf-8")],
            )
            return
        if res.redirect_to is not None:
            self._simple(
                record,
                res.redirect_status,
                b"",
                _merge_headers([("Location", res.redirect_to)], res.headers),
            )
            return
        if res.status is not None:
            self._simple(
                record,
                res.status,
                res.body,
                _merge_headers([("Content-Type", res.content_type)], res.headers),
            )
            return
        if res.huge_mib is not None:
            self._huge(record, res)
            return
        self._normal(record, res)

    def _validators(self, res: Resource) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        if res.etag is not None:
            out.append(("ETag", res.etag))
        if res.last_modified is not None:
            out.append(("Last-Modified", res.last_modified))
        if res.cache_control is not None:
            out.append(("Cache-Control", res.cache_control))
        if res.gzip:
            out.append(("Vary", "Accept-Encoding"))
        return out

    def _not_modified(self, res: Resource) -> bool:
        if res.ignore_conditional:
            return False
        inm = self.headers.get_all("If-None-Match")
        if inm:  # RFC 9110 13.2.2: when If-None-Match is present, If-Modified-Since is ignored
            tags = [tag for value in inm for tag in value.split(",")]
            if any(tag.strip() == "*" for tag in tags):
                return True
            return res.etag is not None and any(_opaque(t) == _opaque(res.etag) for t in tags)
        ims = self.headers.get("If-Modified-Since")
        if ims and res.last_modified_ts is not None:
            since = _parse_http_date(ims)
            return since is not None and res.last_modified_ts <= since
        return False

    def _normal(self, record: RequestRecord, res: Resource) -> None:
        validators = self._validators(res)
        if self._not_modified(res):
            self._send_head(304, _merge_headers(validators, res.headers))
            return
        use_gzip = res.gzipped is not None and _accepts_gzip(
            self.headers.get_all("Accept-Encoding") or []
        )
        payload = res.gzipped if use_gzip and res.gzipped is not None else res.body
        head = [("Content-Type", res.content_type), *validators]
        if use_gzip:
            head.append(("Content-Encoding", "gzip"))
        if res.chunked:
            head.append(("Transfer-Encoding", "chunked"))
        else:
            head.append(("Content-Length", str(len(payload))))
        self._send_head(200, _merge_headers(head, res.headers))
        if self.command == "HEAD":
            return
        if res.trickle is None:
            self._write(record, payload, res.chunked)
        else:
            seconds, chunks = res.trickle
            n = max(1, min(chunks, len(payload)))
            step = -(-len(payload) // n)  # ceiling division
            for start in range(0, max(len(payload), 1), step):
                self._wait(seconds / n)
                self._write(record, payload[start : start + step], res.chunked)
        if res.chunked:
            self.wfile.write(b"0\r\n\r\n")

    def _huge(self, record: RequestRecord, res: Resource) -> None:
        total = res.huge_bytes
        head = [("Content-Type", res.content_type)]
        if res.cache_control is not None:
            head.append(("Cache-Control", res.cache_control))
        if res.chunked:
            head.append(("Transfer-Encoding", "chunked"))
        else:
            head.append(("Content-Length", str(total)))
        self._send_head(200, _merge_headers(head, res.headers))
        if self.command == "HEAD":
            return
        stopping = self.server.feed._stopping
        for piece in iter_huge(total):
            if stopping.is_set():
                raise _Stopped
            self._write(record, piece, res.chunked)
        if res.chunked:
            self.wfile.write(b"0\r\n\r\n")


class FeedServer:
    """A loopback HTTP/1.1 (keep-alive) server in a background thread; see module docstring.

    ``host`` may be any 127.x.y.z address: start a second server on 127.0.0.2 to get a
    second "host" for per-host tests. ``port=0`` (default) picks a free port.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        if not host.startswith("127."):
            raise ValueError(f"FeedServer binds loopback addresses only, not {host!r}")
        self.host = host
        self._want_port = port
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._resources: dict[str, Resource] = {}
        self._records: list[RequestRecord] = []
        self._in_flight = 0
        self._in_flight_by_path: dict[str, int] = {}
        self._peak = 0
        self._peak_by_path: dict[str, int] = {}
        self._connections: dict[socket.socket, int] = {}
        self._threads: dict[socket.socket, threading.Thread] = {}
        self._next_connection_id = 0
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.errors: list[BaseException] = []  # unexpected handler errors, for debugging

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> FeedServer:
        if self._httpd is not None:
            return self
        self._stopping.clear()
        httpd = _HTTPServer((self.host, self._want_port), _Handler)
        httpd.feed = self
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"feedserver-{httpd.server_port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving; wakes hanging/delayed handlers and closes keep-alive connections."""
        httpd = self._httpd
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        with self._lock:
            sockets = list(self._connections)
            threads = list(self._threads.values())
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        httpd.server_close()
        deadline = time.monotonic() + timeout
        if self._thread is not None:
            self._thread.join(max(0.0, deadline - time.monotonic()))
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._httpd = None
        self._thread = None

    def __enter__(self) -> FeedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("FeedServer is not started")
        return self._httpd.server_port

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def url(self, path: str = "/") -> str:
        """``http://127.0.0.1:PORT/path`` (a leading slash on ``path`` is optional)."""
        return self.base_url + _norm_path(path)

    # -- content ----------------------------------------------------------------------

    def put(
        self,
        path: str,
        body: bytes | str = b"",
        content_type: str = DEFAULT_CONTENT_TYPE,
        headers: Mapping[str, str] | None = None,
        *,
        etag: bool | str = True,
        last_modified: bool | float | datetime | str = True,
        cache_control: str | None = DEFAULT_CACHE_CONTROL,
        gzip: bool = True,
        chunked: bool = False,
        ignore_conditional: bool = False,
        status: int | None = None,
        redirect_to: str | None = None,
        redirect_status: int = 301,
        delay: float = 0.0,
        trickle: tuple[float, int] | None = None,
        hang: bool = False,
        reset: bool = False,
        huge_mib: float | None = None,
    ) -> Resource:
        """Register or replace the resource at ``path``; returns it (read ``.etag``,
        ``.last_modified``). A request's exact target (with query) wins over its bare path.
        ``status``, ``redirect_to``, ``hang``, ``reset`` and ``huge_mib`` are exclusive.

        - ``etag``: True = '"<first 16 hex of sha1(body)>"', False = none, str = that tag.
        - ``last_modified``: True = time of put (second resolution; kept when the body is
          unchanged, otherwise strictly later than before), False = none, datetime/epoch =
          that time, str = sent verbatim (parsed if possible for If-Modified-Since).
        - ``status``: answer that fixed status with ``body`` and ``headers``, no validators.
        - ``redirect_to``: Location value sent verbatim with ``redirect_status``.
        - ``delay``: seconds before answering; ``trickle=(seconds, chunks)``: headers at
          once, then the body in ``chunks`` pieces, ``seconds/chunks`` apart.
        - ``hang``: read the request, never answer (until stop()); ``reset``: send half
          the status/headers, then RST the connection.
        - ``huge_mib``: stream that many MiB generated on the fly, with Content-Length
          (``chunked=False``) or chunked without one (``chunked=True``); no validators.
        - ``chunked``: Transfer-Encoding: chunked instead of Content-Length.
        - ``ignore_conditional``: always 200 with the same body (validators still sent).
        - ``gzip``: gzip when Accept-Encoding allows (and send Vary: Accept-Encoding).
        - ``cache_control``: default "max-age=300"; None to omit.
        """
        path = _norm_path(path)
        data = body.encode("utf-8") if isinstance(body, str) else bytes(body)
        special = [
            n
            for n, on in (
                ("status", status is not None),
                ("redirect_to", redirect_to is not None),
                ("hang", hang),
                ("reset", reset),
                ("huge_mib", huge_mib is not None),
            )
            if on
        ]
        if len(special) > 1:
            raise ValueError(f"choose at most one of {special}")
        if redirect_status not in REDIRECT_STATUSES:
            raise ValueError(f"redirect_status must be one of {sorted(REDIRECT_STATUSES)}")
        if trickle is not None and (trickle[0] < 0 or trickle[1] < 1):
            raise ValueError("trickle must be (seconds >= 0, chunks >= 1)")
        if status is not None and not 100 <= status <= 599:
            raise ValueError(f"bad status {status}")

        with self._lock:
            prev = self._resources.get(path)
            tag: str | None
            if etag is True:
                tag = '"' + hashlib.sha1(data).hexdigest()[:16] + '"'
            elif etag is False:
                tag = None
            else:
                tag = etag if etag.startswith(('"', 'W/"')) else f'"{etag}"'
            lm_header: str | None
            lm_ts: float | None
            if last_modified is True:
                now = float(int(time.time()))
                if prev is not None and prev.last_modified_ts is not None and prev.body == data:
                    lm_ts = prev.last_modified_ts
                elif prev is not None and prev.last_modified_ts is not None:
                    lm_ts = max(now, float(int(prev.last_modified_ts)) + 1.0)
                else:
                    lm_ts = now
                lm_header = _http_date(lm_ts)
            elif last_modified is False:
                lm_header = lm_ts = None
            elif isinstance(last_modified, str):
                lm_header = last_modified
                lm_ts = _parse_http_date(last_modified)
            elif isinstance(last_modified, datetime):
                when = last_modified if last_modified.tzinfo else last_modified.replace(tzinfo=UTC)
                lm_ts = float(int(when.timestamp()))
                lm_header = _http_date(lm_ts)
            else:
                lm_ts = float(int(last_modified))
                lm_header = _http_date(lm_ts)
            plain = status is None and redirect_to is None and huge_mib is None
            if not plain:
                tag = lm_header = lm_ts = None
            res = Resource(
                path=path,
                body=data,
                content_type=content_type,
                headers=tuple((str(k), str(v)) for k, v in (headers or {}).items()),
                etag=tag,
                last_modified=lm_header,
                last_modified_ts=lm_ts,
                status=status,
                redirect_to=redirect_to,
                redirect_status=redirect_status,
                delay=delay,
                trickle=trickle,
                hang=hang,
                reset=reset,
                huge_mib=huge_mib,
                chunked=chunked,
                gzip=gzip and plain,
                ignore_conditional=ignore_conditional,
                cache_control=cache_control if status is None and redirect_to is None else None,
                gzipped=_gzip(data) if gzip and plain else None,
            )
            self._resources[path] = res
            return res

    def redirect(
        self, path: str, to: str, status: int = 301, headers: Mapping[str, str] | None = None
    ) -> Resource:
        """``path`` answers ``status`` with ``Location: to`` (verbatim; relative is fine)."""
        return self.put(path, headers=headers, redirect_to=to, redirect_status=status)

    def error(
        self,
        path: str,
        status: int,
        body: bytes | str = b"",
        *,
        retry_after: int | str | None = None,
        headers: Mapping[str, str] | None = None,
        content_type: str = "text/plain; charset=utf-8",
    ) -> Resource:
        """``path`` answers a fixed ``status`` (e.g. 500, 410, 429/503 with Retry-After)."""
        extra = dict(headers or {})
        if retry_after is not None:
            extra["Retry-After"] = str(retry_after)
        return self.put(path, body, content_type, extra, status=status)

    def remove(self, path: str) -> None:
        """Forget ``path``; it answers 404 from now on."""
        with self._lock:
            self._resources.pop(_norm_path(path), None)

    def resource(self, path: str) -> Resource | None:
        with self._lock:
            return self._resources.get(_norm_path(path))

    # -- recording --------------------------------------------------------------------

    @property
    def requests(self) -> list[RequestRecord]:
        """Snapshot (copies) of every request so far, oldest first."""
        with self._lock:
            return [replace(r, headers=dict(r.headers)) for r in self._records]

    def requests_for(self, path: str) -> list[RequestRecord]:
        """Requests whose bare path equals ``path``, or whose full target does (if ``path``
        has a query)."""
        p = _norm_path(path)
        return [r for r in self.requests if r.path == p or r.target == p]

    def count(self, path: str | None = None) -> int:
        """Number of requests for ``path`` (matching as ``requests_for``), or all."""
        return len(self.requests) if path is None else len(self.requests_for(path))

    def last(self, path: str | None = None) -> RequestRecord:
        """The most recent request (for ``path``); IndexError if there is none."""
        return (self.requests if path is None else self.requests_for(path))[-1]

    def clear(self) -> None:
        """Forget recorded requests and reset the peaks (to what is in flight now)."""
        with self._lock:
            self._records.clear()
            self._peak = self._in_flight
            self._peak_by_path = dict(self._in_flight_by_path)

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    @property
    def peak_in_flight(self) -> int:
        """Most requests being handled at once (all paths) since start/clear()."""
        with self._lock:
            return self._peak

    def peak_in_flight_for(self, path: str) -> int:
        """Most requests for ``path`` (bare path) being handled at once."""
        with self._lock:
            return self._peak_by_path.get(_norm_path(path), 0)

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until no request is being handled (so records are final). True if idle."""
        with self._changed:
            return self._changed.wait_for(lambda: self._in_flight == 0, timeout)

    def wait_for_count(self, n: int, path: str | None = None, timeout: float = 5.0) -> bool:
        """Wait until at least ``n`` requests (for ``path``) have arrived."""
        p = None if path is None else _norm_path(path)

        def enough() -> bool:
            if p is None:
                return len(self._records) >= n
            return sum(1 for r in self._records if r.path == p or r.target == p) >= n

        with self._changed:
            return self._changed.wait_for(enough, timeout)

    # -- internals used by the handler ------------------------------------------------

    def _lookup(self, target: str, path: str) -> Resource | None:
        with self._lock:
            return self._resources.get(target) or self._resources.get(path)

    def _connection_opened(self, sock: socket.socket, thread: threading.Thread) -> None:
        with self._lock:
            self._next_connection_id += 1
            self._connections[sock] = self._next_connection_id
            self._threads[sock] = thread

    def _connection_closed(self, sock: socket.socket) -> None:
        with self._lock:
            self._connections.pop(sock, None)
            self._threads.pop(sock, None)

    def _connection_id(self, sock: socket.socket) -> int:
        with self._lock:
            return self._connections.get(sock, 0)

    def _begin(self, record: RequestRecord) -> None:
        with self._changed:
            self._records.append(record)
            self._in_flight += 1
            self._peak = max(self._peak, self._in_flight)
            n = self._in_flight_by_path.get(record.path, 0) + 1
            self._in_flight_by_path[record.path] = n
            self._peak_by_path[record.path] = max(self._peak_by_path.get(record.path, 0), n)
            self._changed.notify_all()

    def _end(self, record: RequestRecord) -> None:
        with self._changed:
            record.finished = time.time()
            self._in_flight -= 1
            self._in_flight_by_path[record.path] -= 1
            self._changed.notify_all()


def _gzip(data: bytes) -> bytes:
    return gziplib.compress(data, compresslevel=6, mtime=0)


def iter_huge(total: int) -> Iterator[bytes]:
    """The bytes a ``huge_mib`` resource sends, for tests that want to compare."""
    block = _HUGE_PREFIX + _HUGE_BLOCK[len(_HUGE_PREFIX) :]
    while total > 0:
        yield block[:total]
        total -= len(block[:total])
        block = _HUGE_BLOCK


def dated_rss(tag: str, published: list[datetime]) -> str:
    """An RSS 2.0 document named `tag` with one item per date of `published` (its
    `pubDate`), titled, linked and guid'ed `tag`-i."""
    dates = [email.utils.format_datetime(when, usegmt=True) for when in published]
    entries = "".join(
        f"<item><title>{tag} {i}</title><link>http://example.org/{tag}/{i}</link>"
        f"<guid>{tag}-{i}</guid><pubDate>{date}</pubDate></item>"
        for i, date in enumerate(dates)
    )
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>{tag}</title>{entries}' \
        "</channel></rss>"  # fmt: skip
