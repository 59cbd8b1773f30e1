"""`python -m ingest.demo` (what `make demo` runs) as a subprocess, for the demo's tests.

One job: start the demo with its files in a test's tmp_path and a free port, wait for the
line that gives the page's address, hand over the addresses, and stop it with SIGINT (as
Ctrl-C does) when the block ends, recording how it ended.  It asserts nothing itself.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from feedlab_helpers import free_port

PAGE_LINE = re.compile(r"the collection page is at (http://\S+/) ")
SAMPLES_LINE = re.compile(r"sample feeds on (http://\S+/),")


@dataclass
class Demo:
    page: str = ""
    samples: str = ""
    output: list[str] = field(default_factory=list)
    returncode: int | None = None


@contextmanager
def running_demo(where: Path) -> Iterator[Demo]:
    demo = Demo()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("INGEST_ALLOW_NETWORKS", None)  # the demo's own sources.yaml must allow loopback
    proc = subprocess.Popen(
        [sys.executable, "-m", "ingest.demo", "--dir", str(where), "--port", str(free_port())],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip
    ready = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            demo.output.append(line)
            if m := SAMPLES_LINE.search(line):
                demo.samples = m.group(1)
            if m := PAGE_LINE.search(line):
                demo.page = m.group(1)
                ready.set()
        ready.set()  # it ended: do not wait any longer

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        ready.wait(120)
        yield demo
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # Ctrl-C
        try:
            demo.returncode = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            demo.returncode = proc.wait()
        reader.join(10)
