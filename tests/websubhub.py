"""A WebSub hub on a loopback address, written for the tests, and `ingest serve` in a thread.

One job: let the WebSub tests run the whole protocol over real sockets. `Hub` accepts
subscribe/unsubscribe requests (form-encoded POSTs, answered 202 Accepted), then verifies
each intent at the subscriber's callback as the Recommendation says (a GET with
``hub.mode``, ``hub.topic``, ``hub.challenge`` and, for a subscribe, ``hub.lease_seconds``,
the challenge expected back), keeps the verified subscriptions with their secrets, and
``publish`` distributes a body to a topic's subscribers signed with ``X-Hub-Signature``
(any of sha1/sha256/sha384/sha512, or a wrong secret, or none). Every request and every
verification is recorded for the tests to assert on. ``WebApp`` runs the ``ingest serve``
app under uvicorn on 127.0.0.1 in a thread.

It does not persist anything, speaks no TLS, and binds nothing but 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import hmac
import http.server
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import httpx

__all__ = ["Hub", "HubRequest", "Verification", "WebApp"]


@dataclass(frozen=True)
class HubRequest:
    """One subscription request the hub received."""

    mode: str
    topic: str
    callback: str
    secret: str | None
    lease_seconds: str | None
    at: float


@dataclass(frozen=True)
class Verification:
    """One verification of intent the hub made, and what the callback answered."""

    mode: str
    callback: str
    status: int
    confirmed: bool  # the callback echoed the challenge


@dataclass
class Hub:
    """A hub on 127.0.0.1:<ephemeral>; use as a context manager."""

    lease: int = 3600  # hub.lease_seconds granted
    refuse: int | None = None  # answer every request with this status instead of 202
    requests: list[HubRequest] = field(default_factory=list)
    verifications: list[Verification] = field(default_factory=list)
    subscribers: dict[tuple[str, str], str | None] = field(default_factory=dict)  # -> secret
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> Hub:
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(length).decode(), keep_blank_values=True)
                status = hub._accept({k: v[0] for k, v in form.items()})
                body = b"" if status == 202 else b"no thanks"
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hub"

    def _accept(self, form: dict[str, str]) -> int:
        request = HubRequest(
            form.get("hub.mode", ""), form.get("hub.topic", ""), form.get("hub.callback", ""),
            form.get("hub.secret"), form.get("hub.lease_seconds"), time.time(),
        )  # fmt: skip
        with self.lock:
            self.requests.append(request)
        if self.refuse is not None:
            return self.refuse
        if request.mode not in ("subscribe", "unsubscribe") or not request.callback:
            return 400
        # verification of intent happens after the 202, as hubs do (asynchronously)
        threading.Thread(target=self._verify, args=(request,), daemon=True).start()
        return 202

    def _verify(self, request: HubRequest) -> None:
        time.sleep(0.05)
        challenge = secrets.token_urlsafe(16)
        params = {
            "hub.mode": request.mode,
            "hub.topic": request.topic,
            "hub.challenge": challenge,
        }
        if request.mode == "subscribe":
            params["hub.lease_seconds"] = str(self.lease)
        try:
            resp = httpx.get(request.callback, params=params, timeout=10)
            status, confirmed = resp.status_code, resp.status_code == 200 and resp.text == challenge
        except httpx.HTTPError:
            status, confirmed = 0, False
        with self.lock:
            self.verifications.append(
                Verification(request.mode, request.callback, status, confirmed)
            )
            key = (request.topic, request.callback)
            if confirmed and request.mode == "subscribe":
                self.subscribers[key] = request.secret
            elif confirmed:
                self.subscribers.pop(key, None)

    def verified(self, mode: str = "subscribe") -> list[Verification]:
        with self.lock:
            return [v for v in self.verifications if v.mode == mode and v.confirmed]

    def of_mode(self, mode: str) -> list[HubRequest]:
        with self.lock:
            return [r for r in self.requests if r.mode == mode]

    def publish(
        self,
        topic: str,
        body: bytes,
        *,
        algorithm: str = "sha256",
        secret: str | None = None,
        signed: bool = True,
        content_type: str = "application/atom+xml",
    ) -> list[int]:
        """Distribute `body` to every verified subscriber of `topic`; their statuses.
        `secret` replaces the subscriber's own (a forged push); `signed` False sends none."""
        with self.lock:
            targets = [(cb, s) for (t, cb), s in self.subscribers.items() if t == topic]
        statuses = []
        for callback, own in targets:
            headers = {"Content-Type": content_type}
            key = secret if secret is not None else own
            if signed and key is not None:
                digest = hmac.new(key.encode(), body, getattr(hashlib, algorithm)).hexdigest()
                headers["X-Hub-Signature"] = f"{algorithm}={digest}"
            statuses.append(
                httpx.post(callback, content=body, headers=headers, timeout=30).status_code
            )
        return statuses


class WebApp:
    """`ingest serve`'s app under uvicorn on 127.0.0.1:<ephemeral>, in a thread."""

    def __init__(self, app: Any) -> None:
        import socket

        import uvicorn

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", server_header=False, lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> WebApp:
        self.thread.start()
        deadline = time.time() + 10
        while not self.server.started:
            if time.time() > deadline:
                raise RuntimeError("uvicorn did not start within 10 s")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()
