"""HTTPS: a poll verifies the server's certificate with the system's trust store.

A loopback HTTPS server presents a certificate from a throwaway CA (trustme).
A poll that does not trust that CA fails, saying why; one whose trust store
holds it (`SSL_CERT_FILE`, which the system's OpenSSL honours) succeeds.  Each
runs in its own process, because aiohttp builds its verified SSL context when
it is imported.  This is what the production client (`make_client`) does for
every https source, whatever SSL context its transport object carries.
"""

from __future__ import annotations

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

async def go():
    async with make_client(Settings()) as client:
        try:
            f = await Fetcher(client).fetch(Source(key="s", name="s", url=sys.argv[1]))
        except errors.FetchError as e:
            print("FAILED", e)
        else:
            print("OK", f.status, len(f.content))

asyncio.run(go())
"""


class _Feed(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/rss+xml")
        self.send_header("Content-Length", str(len(RSS)))
        self.end_headers()
        self.wfile.write(RSS)

    def log_message(self, *args: object) -> None:  # quiet
        pass


@pytest.fixture
def https_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An HTTPS feed on 127.0.0.1 and the PEM file of the CA that signed its certificate."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(context)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Feed)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}/feed.xml", ca_file
    finally:
        server.shutdown()
        server.server_close()


def _poll(url: str, **env: str) -> str:
    environ = {k: v for k, v in os.environ.items() if k not in ("SSL_CERT_FILE", "SSL_CERT_DIR")}
    environ.update(INGEST_ALLOW_NETWORKS="127.0.0.0/8", **env)
    done = subprocess.run(
        [sys.executable, "-c", POLL, url], env=environ, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_certificate_from_an_unknown_ca_fails_the_poll(https_server: tuple[str, Path]) -> None:
    url, _ = https_server
    out = _poll(url)
    assert out.startswith("FAILED") and "certificate" in out.lower(), out


def test_a_certificate_from_a_trusted_ca_is_accepted(https_server: tuple[str, Path]) -> None:
    url, ca_file = https_server
    assert _poll(url, SSL_CERT_FILE=str(ca_file)) == f"OK 200 {len(RSS)}"
