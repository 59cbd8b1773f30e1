"""`ingest serve`: a small Starlette app over one Store, read-only but for WebSub pushes.

Routes: `/` (the collection page), `/api/items` (JSON, keyset-paginated),
`/feeds/{section}.atom` and `/feeds/{section}.json`, `/healthz`,
`/metrics` (what the database knows, for Prometheus: dbmetrics.py),
`/status` (the source-health page for operators: sourcehealth.py; off with
`status_page=False`) and `/websub/{id}`, where WebSub hubs verify
subscriptions and push (web/websub.py: the one route that writes, what hubs
push).  Every other answer, errors included, carries an ETag (a hash of the
body) and a Last-Modified (the newest `updated_at` of the stories in it), and
a conditional GET whose validators still match gets an empty 304.  The
endpoints are plain functions: Starlette runs them in its thread pool, where
the Store's blocking SQLAlchemy calls belong.
"""

from __future__ import annotations

import errno
import hashlib
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ingest import errors
from ingest.config.site import SiteSpec
from ingest.runtime.push import PushParsing
from ingest.store import Store
from ingest.web.metrics import registry_for
from ingest.web.params import BadRequest, items_query
from ingest.web.site import Body, Site
from ingest.web.sourcehealth import render_status, source_views
from ingest.web.websub import websub_routes

__all__ = ["MAX_AGE", "conditional", "create_app", "etag_of", "listen", "serve"]

MAX_AGE = 60  # seconds a browser or CDN may reuse an answer before revalidating


def etag_of(content: bytes) -> str:
    return '"' + hashlib.sha256(content).hexdigest()[:32] + '"'


def _not_modified(headers: Headers, etag: str, modified: datetime) -> bool:
    """RFC 9110 §13.2.2: If-None-Match decides when present, else If-Modified-Since."""
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None:
        tags = [t.strip() for t in if_none_match.split(",")]
        return "*" in tags or etag in (t.removeprefix("W/") for t in tags)
    if_modified_since = headers.get("if-modified-since")
    if if_modified_since:
        try:
            since = parsedate_to_datetime(if_modified_since)
        except (TypeError, ValueError):
            return False  # an unparseable date is ignored, as the RFC says
        if since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        return modified <= since
    return False


def conditional(request: Request, body: Body, *, max_age: int = MAX_AGE) -> Response:
    """`body` as a response with validators, or a 304 when the client's copy is current."""
    modified = body.last_modified.astimezone(UTC).replace(microsecond=0)
    etag = etag_of(body.content)
    cacheable = body.status == 200 and request.url.path != "/healthz"
    headers = {
        "ETag": etag,
        "Last-Modified": format_datetime(modified, usegmt=True),
        "Cache-Control": f"public, max-age={max_age}" if cacheable else "no-cache",
        "Access-Control-Allow-Origin": "*",  # public, read-only data: any site may fetch it
        "X-Content-Type-Options": "nosniff",
    }
    if body.status == 200 and _not_modified(request.headers, etag, modified):
        return Response(status_code=304, headers=headers)
    return Response(body.content, status_code=body.status, media_type=body.media_type,
                    headers=headers)  # fmt: skip


def create_app(
    store: Store,
    *,
    templates: Path | None = None,
    base_url: str | None = None,
    status_page: bool = True,
    spec: SiteSpec | None = None,
) -> Starlette:
    """The app over `store`; `templates` is a publisher's directory searched before
    the shipped templates; `base_url` is the public address feeds link to (default:
    the address each request was made to); `status_page` serves `/status`; `spec` is
    sources.yaml's `site:` block."""
    site = Site(store, templates=templates, base_url=base_url, spec=spec)

    def answer(request: Request, body: Body) -> Response:
        return conditional(request, body)

    def index(request: Request) -> Response:
        return answer(request, site.page())

    def api_items(request: Request) -> Response:
        try:
            query = items_query(request.query_params.multi_items())
        except BadRequest as e:
            return answer(request, site.error(400, str(e), parameter=e.parameter))
        return answer(request, site.items(query))

    def feed(kind: str) -> Route:
        def endpoint(request: Request) -> Response:
            section = request.path_params["section"]
            body = site.feed(section, kind, request_base=str(request.base_url))
            if body is None:
                return answer(request, site.error(404, f"no section named {section!r}"))
            return answer(request, body)

        return Route(f"/feeds/{{section}}.{kind}", endpoint, methods=["GET"])

    def healthz(request: Request) -> Response:
        return answer(request, site.health())

    registry = registry_for(store)

    def metrics(request: Request) -> Response:  # read at each scrape: never cached
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST,
                        headers={"Cache-Control": "no-store"})  # fmt: skip

    def status(request: Request) -> Response:  # for operators: never cached, never indexed
        now = datetime.now(UTC)
        html = render_status(site.env, source_views(store.status(), now), now)
        return Response(html, media_type="text/html; charset=utf-8",
                        headers={"Cache-Control": "no-store", "X-Robots-Tag": "noindex",
                                 "X-Content-Type-Options": "nosniff"})  # fmt: skip

    def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return answer(request, site.error(exc.status_code, str(exc.detail)))

    def store_error(request: Request, exc: Exception) -> Response:
        return answer(request, site.error(503, f"the database is not available: {exc}"))

    def ingest_error(request: Request, exc: Exception) -> Response:  # e.g. a template that fails
        return answer(request, site.error(500, str(exc)))

    parsing = PushParsing()  # the parse worker of pushed bodies, started at the first push

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            parsing.close()

    app = Starlette(
        routes=[
            Route("/", index, methods=["GET"]),
            Route("/api/items", api_items, methods=["GET"]),
            feed("atom"),
            feed("json"),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            *([Route("/status", status, methods=["GET"])] if status_page else []),
            *websub_routes(store, parsing),
        ],
        lifespan=lifespan,
        exception_handlers={
            HTTPException: http_error,
            errors.StoreError: store_error,
            errors.IngestError: ingest_error,
        },
    )
    return app


def serve(
    store: Store,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    templates: Path | None = None,
    base_url: str | None = None,
    status_page: bool = True,
    spec: SiteSpec | None = None,
    sock: socket.socket | None = None,
) -> int:
    """Answer HTTP on host:port until SIGINT/SIGTERM; returns the exit code.

    The socket is bound here, before uvicorn starts, so that an address in use
    is one clear line (`errors.IngestError`), not uvicorn's log and traceback;
    `sock` is one bound already (by `listen`), for a caller that must know the port.
    """
    import uvicorn

    app = create_app(
        store, templates=templates, base_url=base_url, status_page=status_page, spec=spec
    )
    sock = sock or listen(host, port)
    config = uvicorn.Config(app, log_level="info", server_header=False)
    with sock:
        uvicorn.Server(config).run(sockets=[sock])
    return 0


def listen(host: str, port: int) -> socket.socket:
    """A TCP socket bound to host:port (as uvicorn binds: SO_REUSEADDR), or IngestError."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
    except OSError as e:
        raise errors.IngestError(f"cannot listen on {host}:{port}: {e.strerror or e}") from e
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as e:
        sock.close()
        hint = ""
        if e.errno == errno.EADDRINUSE:
            hint = " (another program, perhaps another `ingest serve`, uses it: try --port)"
        raise errors.IngestError(f"cannot listen on {host}:{port}: {e.strerror or e}{hint}") from e
    sock.set_inheritable(True)
    return sock
