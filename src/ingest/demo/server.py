"""The demo's sample server: the bundled feeds and page over loopback, like real sites.

One job: answer GETs for the files in `ingest/demo/data/` at the paths the
demo's sources.yaml names, with their media types, an ETag and 304s, in a
background thread (the standard library's `ThreadingHTTPServer`).  Dates in
the files are written relative to today (`@ISO-3@`, `@RFC822-3@`: three days
ago) and `@BASE@` is the server's own address, so the demo's stories are
always recent and its links point back here.  It stores nothing and knows
nothing of ingest's pipeline.
"""

from __future__ import annotations

import hashlib
import re
import threading
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Final

__all__ = ["DATA", "ROUTES", "SampleServer", "render"]

DATA: Final = Path(__file__).parent / "data"

# path -> (file in DATA, media type)
ROUTES: Final = {
    "/journal/rss/current.xml": ("journal.rdf", "application/rdf+xml; charset=utf-8"),
    "/digest/feed.json": ("research.json", "application/feed+json; charset=utf-8"),
    "/blog/feed/": ("blog.xml", "application/rss+xml; charset=UTF-8"),
    "/thinktank/blogs": ("collection.html", "text/html; charset=utf-8"),
    "/talks/feed.xml": ("talks.xml", "application/rss+xml; charset=utf-8"),
    "/channel/videos.xml": ("channel.xml", "application/atom+xml; charset=utf-8"),
    "/img/video.svg": ("video.svg", "image/svg+xml"),
}
FEEDBACK_PAGE: Final = (
    b"<!doctype html><meta charset='utf-8'><title>Feedback</title>"
    b"<p>This is where the demo page's feedback link goes.</p>"
)
_PLACEHOLDER: Final = re.compile(r"@(ISO|RFC822)-(\d+)@")


def render(text: str, base: str, today: datetime) -> str:
    """`text` with `@BASE@` and the relative dates filled in (08:00 UTC, N days ago)."""
    morning = today.astimezone(UTC).replace(hour=8, minute=0, second=0, microsecond=0)

    def date(m: re.Match[str]) -> str:
        moment = morning - timedelta(days=int(m.group(2)))
        return moment.isoformat() if m.group(1) == "ISO" else format_datetime(moment)

    return _PLACEHOLDER.sub(date, text.replace("@BASE@", base))


class SampleServer:
    """The sample files on http://127.0.0.1:<port>/ until `stop()` (or the `with` ends)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._httpd = ThreadingHTTPServer((host, port), _Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://{host}:{self._httpd.server_address[1]}"
        today = datetime.now(UTC)
        bodies: dict[str, tuple[bytes, str]] = {
            path: (render((DATA / name).read_text("utf-8"), self.url, today).encode(), media)
            for path, (name, media) in ROUTES.items()
        }
        bodies["/feedback"] = (FEEDBACK_PAGE, "text/html; charset=utf-8")
        self._httpd.bodies = bodies  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="demo-samples", daemon=True
        )

    def start(self) -> SampleServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._httpd.shutdown()
            self._thread.join()
        self._httpd.server_close()

    def __enter__(self) -> SampleServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    server_version = "ingest-demo"

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        bodies: dict[str, tuple[bytes, str]] = self.server.bodies  # type: ignore[attr-defined]
        if path not in bodies:
            self.send_error(404, "not one of the demo's samples")
            return
        body, media = bodies[path]
        etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
        if self.headers.get("If-None-Match") == etag:
            self.send_response(304)
            self.send_header("ETag", etag)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", media)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", etag)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the demo prints its own lines."""
