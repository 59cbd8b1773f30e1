"""A loopback forward proxy for tests: HTTP (plain and CONNECT) and SOCKS5 on one port.

One job: stand in for the proxy an editor names in a source's `proxy:`, and
record where each request asked to go (`targets`, "host:port") and with what
credentials, so a test can tell a poll went through it, and to which address.
The first byte of a connection picks the protocol (5: SOCKS5; else HTTP).
With `auth=(user, password)` both ask for those credentials (HTTP: 407 without
`Proxy-Authorization`; SOCKS5: the username/password method).  It connects
anywhere it is asked: the tests point it at loopback servers only.  Standard
library only; one thread per connection and direction.
"""

from __future__ import annotations

import base64
import contextlib
import socket
import socketserver
import struct
import threading
from typing import Any

__all__ = ["ProxyServer", "recv_head"]


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    proxy: ProxyServer


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


def recv_head(sock: socket.socket, data: bytes = b"") -> tuple[bytes, bytes] | None:
    """An HTTP message head read off `sock` after what `data` holds already: (the head
    without its blank line, the bytes that came after it), or None when the peer closed."""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    return head, rest


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        sock: socket.socket = self.request
        first = sock.recv(1, socket.MSG_PEEK)
        if not first:
            return
        try:
            if first == b"\x05":
                self._socks(sock)
            else:
                self._http(sock)
        except (OSError, ConnectionError, ValueError):
            pass

    # -- SOCKS5 -------------------------------------------------------------------

    def _socks(self, sock: socket.socket) -> None:
        proxy = self.server.proxy
        _, count = _recv_exact(sock, 2)
        methods = _recv_exact(sock, count)
        user = None
        if proxy.auth is not None:
            if 2 not in methods:
                sock.sendall(b"\x05\xff")
                return
            sock.sendall(b"\x05\x02")
            _, ulen = _recv_exact(sock, 2)
            name = _recv_exact(sock, ulen).decode()
            (plen,) = _recv_exact(sock, 1)
            password = _recv_exact(sock, plen).decode()
            ok = (name, password) == proxy.auth
            sock.sendall(b"\x01\x00" if ok else b"\x01\x01")
            if not ok:
                return
            user = name
        else:
            sock.sendall(b"\x05\x00")
        _, _cmd, _, atyp = _recv_exact(sock, 4)
        if atyp == 1:
            host = socket.inet_ntoa(_recv_exact(sock, 4))
        elif atyp == 4:
            host = socket.inet_ntop(socket.AF_INET6, _recv_exact(sock, 16))
        else:
            (n,) = _recv_exact(sock, 1)
            host = _recv_exact(sock, n).decode()
        (port,) = struct.unpack("!H", _recv_exact(sock, 2))
        proxy._record("socks5", f"{host}:{port}", user)
        try:
            upstream = socket.create_connection((host, port), timeout=10)
        except OSError:
            sock.sendall(b"\x05\x05\x00\x01" + b"\x00" * 6)
            return
        sock.sendall(b"\x05\x00\x00\x01" + b"\x00" * 6)
        self._relay(sock, upstream)

    # -- HTTP ---------------------------------------------------------------------

    def _http(self, sock: socket.socket) -> None:
        proxy = self.server.proxy
        got = recv_head(sock)
        if got is None:
            return
        head, rest = got
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ", 2)
        headers = [tuple(x.split(":", 1)) for x in lines[1:] if ":" in x]
        user = None
        if proxy.auth is not None:
            given = next((v.strip() for k, v in headers if k.lower() == "proxy-authorization"), "")
            expected = "Basic " + base64.b64encode(":".join(proxy.auth).encode()).decode()
            if given != expected:
                sock.sendall(
                    b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                    b"Proxy-Authenticate: Basic\r\nContent-Length: 0\r\n\r\n"
                )
                return
            user = proxy.auth[0]
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            proxy._record("connect", f"{host.strip('[]')}:{port}", user)
            upstream = socket.create_connection((host.strip("[]"), int(port)), timeout=10)
            sock.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            if rest:
                upstream.sendall(rest)
            self._relay(sock, upstream)
            return
        if not target.startswith("http://"):
            sock.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            return
        hostport, _, path = target[len("http://") :].partition("/")
        host, _, port = hostport.rpartition(":") if ":" in hostport else (hostport, "", "80")
        proxy._record("http", f"{host.strip('[]')}:{port}", user, url=target)
        upstream = socket.create_connection((host.strip("[]"), int(port)), timeout=10)
        kept = [
            f"{k}:{v}"
            for k, v in headers
            if k.lower() not in ("proxy-authorization", "proxy-connection", "connection")
        ]
        request = "\r\n".join([f"{method} /{path} {version}", *kept, "Connection: close", "", ""])
        upstream.sendall(request.encode("latin-1") + rest)
        self._relay(sock, upstream)

    def _relay(self, client: socket.socket, upstream: socket.socket) -> None:
        upstream.settimeout(None)
        back = threading.Thread(target=_pipe, args=(upstream, client), daemon=True)
        back.start()
        _pipe(client, upstream)
        back.join(timeout=10)
        upstream.close()


class ProxyServer:
    """Start with `with ProxyServer() as proxy:`; `proxy.url("socks5")` is its address."""

    def __init__(self, host: str = "127.0.0.1", *, auth: tuple[str, str] | None = None) -> None:
        self.auth = auth
        self._server = _Server((host, 0), _Handler)
        self._server.proxy = self
        self._lock = threading.Lock()
        self.records: list[dict[str, Any]] = []
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _record(self, how: str, where: str, user: str | None, **extra: Any) -> None:
        with self._lock:
            self.records.append({"how": how, "target": where, "user": user, **extra})

    @property
    def targets(self) -> list[str]:
        with self._lock:
            return [r["target"] for r in self.records]

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url(self, scheme: str = "http", userinfo: str = "") -> str:
        at = f"{userinfo}@" if userinfo else ""
        return f"{scheme}://{at}{self._server.server_address[0]}:{self.port}"

    def __enter__(self) -> ProxyServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
