"""The feedlab corpus and server, and the `ingest` process, for the end-to-end tests.

One job: what tests/test_feedlab.py and tests/test_resilience.py both need to run the
real `ingest` command against ../shared/feedlab (or ``INGEST_FEEDLAB``): a `Lab` that
generates a corpus with gen.py and serves it with serve.py on 127.0.0.1-4 at a free
port, `ingest` / `start` to run the command, and `scalar` to read a count back.  The
``lab`` fixture (tests/conftest.py) hands out a `Lab`, or skips, saying so, where
feedlab is missing.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[1]
FEEDLAB = Path(os.environ.get("INGEST_FEEDLAB", ROOT.parent / "shared" / "feedlab"))
FEEDLAB_MISSING = f"feedlab not found at {FEEDLAB}: set INGEST_FEEDLAB to its folder"
INGEST = Path(sys.executable).parent / "ingest"
HOSTS = 4


def feedlab_available() -> bool:
    return (FEEDLAB / "gen.py").exists()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Lab:
    """A generated feedlab corpus served on 127.0.0.1-4:port."""

    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        self.port = port
        self.server: subprocess.Popen[str] | None = None

    def gen(self, feeds: int, items: int, rnd: int = 0) -> dict[str, int]:
        """Write (or rewrite, for round `rnd`) the corpus; gen.py's counts of what it holds."""
        out = subprocess.run(
            [sys.executable, str(FEEDLAB / "gen.py"), str(self.root), "--feeds", str(feeds),
             "--items", str(items), "--round", str(rnd), "--port", str(self.port),
             "--hosts", str(HOSTS)],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        expected: dict[str, int] = json.loads(out.stdout)
        return expected

    def serve(self, delay_ms: float = 0, hosts: int = HOSTS) -> None:
        """Start serve.py over the corpus (it re-reads files that change); stopped by `stop`.

        `hosts` beyond the corpus's own (127.0.0.5, ...) serve the same paths to
        sources that must not share a host with the corpus's feeds."""
        self.server = subprocess.Popen(
            [sys.executable, str(FEEDLAB / "serve.py"), str(self.root), "--port", str(self.port),
             "--hosts", str(hosts), "--delay-ms", str(delay_ms)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        assert self.server.stdout is not None
        assert "serving" in self.server.stdout.readline()

    def stats(self, reset: bool = False) -> dict[str, object]:
        """The server's /__stats counters (zeroed after reading when `reset`)."""
        url = f"http://127.0.0.1:{self.port}/__stats" + ("?reset=1" if reset else "")
        with urllib.request.urlopen(url, timeout=5) as r:
            body: dict[str, object] = json.loads(r.read())
        return body

    def sources(self, settings: str = "", extra: str = "", name: str = "sources.yaml") -> str:
        """The generated sources file with a settings: block and extra sources added."""
        generated = (self.root / "sources.yaml").read_text()
        path = self.root / name
        head = f"settings:\n{settings}" if settings else ""
        path.write_text(head + generated + extra)
        return str(path)

    def url(self, path: str, host: int = 1) -> str:
        return f"http://127.0.0.{host}:{self.port}{path}"

    def stop(self) -> None:
        if self.server is not None:
            self.server.terminate()
            self.server.wait(timeout=10)


def ingest(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the `ingest` command of this venv to the end, in the project root."""
    return subprocess.run(
        [str(INGEST), *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )


def start(*args: str) -> subprocess.Popen[str]:
    """Start the `ingest` command of this venv in the project root, without waiting."""
    return subprocess.Popen(
        [str(INGEST), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT
    )


def scalar(url: str, sql: str) -> int:
    """The one integer `sql` selects from the database at `url`."""
    engine = create_engine(url)
    try:
        with engine.connect() as c:
            return int(c.execute(text(sql)).scalar_one())
    finally:
        engine.dispose()


def start_logged(log: Path, *args: str) -> subprocess.Popen[bytes]:
    """An `ingest` process whose output goes to a file (a pipe nobody reads would fill up)."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [str(INGEST), *args], stdout=out, stderr=subprocess.STDOUT, cwd=ROOT
        )


def wait_for(
    what: str,
    check: Callable[[], bool],
    logs: list[Path],
    deadline: float,
    diagnosis: Callable[[], str] | None = None,
) -> None:
    """Wait up to `deadline` seconds for `check()` (an exception counts as not yet: the
    processes may still be starting); on time-out, fail with the logs' tails."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            if check():
                return
        except Exception:  # the tables are not there yet: the processes are starting
            pass
        time.sleep(0.2)
    tail = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in logs)
    extra = f"{diagnosis()}\n" if diagnosis is not None else ""
    pytest.fail(f"timed out waiting for {what}\n{extra}{tail}")


def stop_all(procs: list[subprocess.Popen[bytes]], grace: float = 30) -> None:
    """SIGTERM every process still running, then wait for each (killed after `grace`)."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
