"""What the benchmark scripts share: a corpus, a free port, feedlab's server, measuring.

`serving` runs feedlab/serve.py for the length of a `with` block; `measure`
runs a command and samples the RSS of its whole process tree (psutil) while
it runs.  It measures and serves; it asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil

__all__ = [
    "compile_sources", "corpus_arguments", "free_port", "generate", "listed_corpus", "measure",
    "serving",
]  # fmt: skip


def corpus_arguments(ap: argparse.ArgumentParser, root: Path) -> None:
    """The feedlab corpus options every timing script takes (defaults: issue 2's corpus)."""
    ap.add_argument("--feeds", type=int, default=200)
    ap.add_argument("--items", type=int, default=25)
    ap.add_argument("--delay-ms", type=float, default=40)
    ap.add_argument("--hosts", type=int, default=16)
    ap.add_argument("--feedlab", type=Path, default=root.parent / "shared" / "feedlab")


def compile_sources(root: Path) -> None:
    """Byte-compile src/ and db/ (pip byte-compiled the peer's files; with
    PYTHONDONTWRITEBYTECODE set, ours would be compiled again on every start)."""
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(root / "src"), str(root / "db")],
        check=True,
    )


def generate(
    feedlab: Path, corpus: Path, *, feeds: int, items: int, port: int, hosts: int, rnd: int = 0
) -> dict[str, Any]:
    """feedlab/gen.py into `corpus` (round `rnd`): its expected.json counts."""
    done = subprocess.run(
        [sys.executable, str(feedlab / "gen.py"), str(corpus), "--feeds", str(feeds),
         "--items", str(items), "--round", str(rnd), "--port", str(port), "--hosts", str(hosts)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    counts: dict[str, Any] = json.loads(done.stdout)
    return counts


def listed_corpus(feedlab: Path, corpus: Path, into: Path, *, port: int, hosts: int) -> Path:
    """A sources file at `into` for a directory of real feeds served as they are
    (feedlab/sources_for.py), with `retention: 36500d` so that their old stories are
    kept, as reader keeps its entries."""
    listed = subprocess.run(
        [sys.executable, str(feedlab / "sources_for.py"), str(corpus),
         "--port", str(port), "--hosts", str(hosts)],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    into.write_text("settings:\n  retention: 36500d\n" + listed)
    return into


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serving(
    feedlab: Path, root: Path, port: int, hosts: int, delay_ms: float = 0
) -> Iterator[subprocess.Popen[str]]:
    """feedlab/serve.py over `root` on 127.0.0.1..`hosts`, until the block ends."""
    server = subprocess.Popen(
        [sys.executable, str(feedlab / "serve.py"), str(root), "--port", str(port),
         "--hosts", str(hosts), "--delay-ms", str(delay_ms)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        server.stdout.readline()  # "feedlab serving ..."
        yield server
    finally:
        server.terminate()
        server.wait(timeout=10)


def measure(
    cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None,
    every: float = 0.01, scan_every: float = 0.25, pss_every: float = 0.25,
) -> dict[str, Any]:  # fmt: skip
    """Run `cmd` to the end: wall seconds, exit code, output, and peak RSS.

    `peak_bytes` is the largest single process's RSS, `tree_bytes` the whole
    process tree's summed RSS (forked workers share pages, so it over-counts),
    `pss_bytes` the tree's summed PSS (each shared page split among the
    processes sharing it: the memory the tree really holds, comparable to a
    single process's RSS; sampled every `pss_every` s, as reading it costs),
    `sampler_cpu` the CPU seconds the sampling itself took; `peak_mb`,
    `tree_mb` and `pss_mb` are the same in MiB.
    """
    started = time.perf_counter()
    proc = psutil.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
        cwd=str(cwd) if cwd else None, text=True,
    )  # fmt: skip
    peak_one = peak_tree = peak_pss = 0
    sampler_cpu = 0.0
    done = threading.Event()

    def sample() -> None:
        # Cheap reads often, costly ones seldom, so that measuring does not take
        # CPU from the measured run (both cores matter to a forking run):
        # RSS (/proc/PID/statm) every `every` s; the list of processes (a scan
        # of all of /proc) every `scan_every` s; PSS, for which the kernel walks
        # every page table (smaps_rollup), every `pss_every` s.
        nonlocal peak_one, peak_tree, peak_pss, sampler_cpu
        started_cpu = time.thread_time()
        tree: list[psutil.Process] = [proc]
        next_scan = next_pss = 0.0
        while not done.is_set():
            now = time.monotonic()
            if now >= next_scan:
                with contextlib.suppress(psutil.Error):
                    tree = [proc, *proc.children(recursive=True)]
                next_scan = now + scan_every
            with_pss = now >= next_pss
            rss, pss = [], []
            for p in tree:
                with contextlib.suppress(psutil.Error):
                    if with_pss:
                        info = p.memory_full_info()
                        rss.append(info.rss)
                        pss.append(info.pss)
                    else:
                        rss.append(p.memory_info().rss)
            if rss:
                peak_one, peak_tree = max(peak_one, max(rss)), max(peak_tree, sum(rss))
            if pss:
                peak_pss = max(peak_pss, sum(pss))
                next_pss = now + pss_every
            time.sleep(every)
        sampler_cpu = time.thread_time() - started_cpu

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    return {
        "seconds": seconds, "rc": proc.returncode, "stdout": out, "stderr": err,
        "peak_bytes": peak_one, "tree_bytes": peak_tree, "pss_bytes": peak_pss,
        "peak_mb": peak_one / 2**20, "tree_mb": peak_tree / 2**20, "pss_mb": peak_pss / 2**20,
        "sampler_cpu": sampler_cpu,
    }  # fmt: skip
