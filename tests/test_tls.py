"""HTTPS: a poll verifies the server's certificate with the system's trust store.

A loopback HTTPS server presents a certificate from a throwaway CA (trustme).
A poll that does not trust that CA fails, saying why; one whose trust store
holds it (`SSL_CERT_FILE`, which the system's OpenSSL honours) succeeds.  Each
runs in its own process, because aiohttp builds its verified SSL context when
it is imported.  This is what the production client (`make_client`) does for
every https source, whatever SSL context its transport object carries.

aiohttp's contexts get their CAs only when the first https request is handed
to it (stages/aiosession.py): the polls below run on both of the client's
paths (the direct lane, httpx's transport), after a plain-http poll in the
same process, and the CAs are counted before and after.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

RSS = (
    b'<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>'
    b"<item><title>One</title><link>https://example.org/1</link><guid>1</guid></item>"
    b"</channel></rss>"
)

POLL = """
import asyncio, sys
from ingest import errors
from ingest.model import Settings, Source
from ingest.stages.fetch import Fetcher
from ingest.stages.transport import make_client

def cas():
    import aiohttp.connector as c
    return c._SSL_CONTEXT_VERIFIED.cert_store_stats()["x509_ca"]

async def go():
    async with make_client(Settings(), lane=sys.argv[1] == "lane") as client:
        for url in sys.argv[2:]:
            try:
                f = await Fetcher(client).fetch(Source(key="s", name="s", url=url))
            except errors.FetchError as e:
                print("FAILED", e)
            else:
                print("OK", f.status, len(f.content))
            print("CAS", cas())

asyncio.run(go())
"""

PLAIN = b'<?xml version="1.0"?><rss version="2.0"><channel><title>P</title></channel></rss>'


class _Feed(http.server.BaseHTTPRequestHandler):
    body = RSS

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/rss+xml")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:  # quiet
        pass


class _Plain(_Feed):
    body = PLAIN


@contextlib.contextmanager
def _serving(
    handler: type[_Feed], context: ssl.SSLContext | None = None
) -> Iterator[http.server.ThreadingHTTPServer]:
    """A server on 127.0.0.1 answering with `handler`, over TLS when given a context."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def https_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An HTTPS feed on 127.0.0.1 and the PEM file of the CA that signed its certificate."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    with _serving(_Feed, context) as server:
        yield f"https://127.0.0.1:{server.server_address[1]}/feed.xml", ca_file


@pytest.fixture
def http_server() -> Iterator[str]:
    """A plain-http feed on 127.0.0.1."""
    with _serving(_Plain) as server:
        yield f"http://127.0.0.1:{server.server_address[1]}/plain.xml"


def _poll(path: str, *urls: str, **env: str) -> list[str]:
    """Poll `urls` in turn in a new process on the client's `path` ("lane" or "httpx"):
    each poll's outcome line, then the CAs aiohttp's verified context holds after it."""
    environ = {k: v for k, v in os.environ.items() if k not in ("SSL_CERT_FILE", "SSL_CERT_DIR")}
    environ.update(INGEST_ALLOW_NETWORKS="127.0.0.0/8", **env)
    done = subprocess.run(
        [sys.executable, "-c", POLL, path, *urls],
        env=environ, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()


PATHS = pytest.mark.parametrize("path", ["lane", "httpx"])


@PATHS
def test_a_certificate_from_an_unknown_ca_fails_the_poll(
    https_server: tuple[str, Path], path: str
) -> None:
    url, _ = https_server
    out = _poll(path, url)[0]
    assert out.startswith("FAILED") and "certificate" in out.lower(), out


@PATHS
def test_a_certificate_from_a_trusted_ca_is_accepted(
    https_server: tuple[str, Path], path: str
) -> None:
    url, ca_file = https_server
    assert _poll(path, url, SSL_CERT_FILE=str(ca_file)) == [f"OK 200 {len(RSS)}", "CAS 1"]


@PATHS
def test_the_cas_are_loaded_for_the_first_https_poll_not_before(
    https_server: tuple[str, Path], http_server: str, path: str
) -> None:
    url, ca_file = https_server
    lines = _poll(path, http_server, url, http_server, SSL_CERT_FILE=str(ca_file))
    # the plain poll needs no CA (and the lane loads none); the https one has them all
    first_cas = "CAS 0" if path == "lane" else "CAS 1"
    assert lines == [
        f"OK 200 {len(PLAIN)}", first_cas,
        f"OK 200 {len(RSS)}", "CAS 1",
        f"OK 200 {len(PLAIN)}", "CAS 1",
    ]  # fmt: skip
