"""Hostile input end to end: `ingest run`, `check`, `latest` and `try` against a server of our own.

Each case is run over loopback (tests/feedserver.py) on SQLite and PostgreSQL, beside good
sources that must all be stored:

- a double-gzip bomb (10 GiB of zeros gzipped twice, ~24 KB on the wire) fails as
  `too_large` while the `ingest run` process tree stays under 300 MB (its peak, sampled
  from /proc, and the largest single process's peak from the kernel's rusage);
- sources.yaml values that used to pass `ingest check` and crash later (huge durations,
  control characters in text, a YAML merge-key bomb) are refused with
  `sources.yaml:LINE: message` and exit 2;
- feeds whose URLs, images and titles carry NUL, ESC and BEL: stored without them, and
  never printed raw by `ingest latest` or `ingest try`.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import struct
import subprocess
import sys
import threading
import zlib
from pathlib import Path

import pytest

from feedlab_helpers import INGEST, ROOT
from feedserver import FeedServer

MB = 1000 * 1000
GIB = 1 << 30
PAGE = os.sysconf("SC_PAGE_SIZE")
GOOD = 6  # good feeds beside the hostile ones
PER_FEED = 5  # entries in each


def zeros_gzip(size: int) -> bytes:
    """A valid gzip stream of `size` (a multiple of 1 MiB) zero bytes, built without
    compressing them all: after the first MiB, every MiB of zeros compresses (flushed to a
    byte boundary) to the same bytes, which are repeated."""
    block = 1 << 20
    c = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    first = c.compress(bytes(block)) + c.flush(zlib.Z_FULL_FLUSH)
    again = c.compress(bytes(block)) + c.flush(zlib.Z_FULL_FLUSH)
    assert c.compress(bytes(block)) + c.flush(zlib.Z_FULL_FLUSH) == again
    tail = c.flush()
    crc = 0
    chunk = bytes(64 * block)
    for _ in range(size // len(chunk)):
        crc = zlib.crc32(chunk, crc)
    header = b"\x1f\x8b\x08\0\0\0\0\0\x02\xff"
    trailer = struct.pack("<II", crc, size & 0xFFFFFFFF)
    return header + first + again * (size // block - 1) + tail + trailer


@pytest.fixture(scope="module")
def bomb() -> bytes:
    """10 GiB of zeros, gzipped twice."""
    inner = zeros_gzip(10 * GIB)
    return gzip.compress(inner, compresslevel=9)


def test_the_bomb_is_what_it_claims() -> None:
    small = zeros_gzip(64 << 20)  # the same construction, small enough to inflate here
    assert gzip.decompress(small) == bytes(64 << 20)


def rss_of_tree(root: int) -> int:
    """Resident bytes of `root` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, ()))
        try:
            with open(f"/proc/{pid}/statm") as f:
                total += int(f.read().split()[1]) * PAGE
        except OSError:
            continue
    return total


def run_measured(*args: str) -> tuple[subprocess.CompletedProcess[str], int, int]:
    """`ingest ARGS` to the end, with the peak RSS of its process tree (sampled from /proc
    as fast as it can be read) and the largest peak RSS of any one process in it (the
    kernel's count, read through a wrapper process that waits for it)."""
    wrapper = (
        "import resource, subprocess, sys\n"
        "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "sys.stdout.write(p.stdout)\n"
        "sys.stderr.write(p.stderr)\n"
        "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
        "sys.stderr.write('\\nMAXRSS %d\\n' % peak)\n"
        "sys.exit(p.returncode)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", wrapper, str(INGEST), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while True:
            peak = max(peak, rss_of_tree(proc.pid))
            if done.wait(0.005):
                return

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        out, err = proc.communicate(timeout=300)
    finally:
        done.set()
        sampler.join()
    rest, _, maxrss = err.rpartition("\nMAXRSS ")
    result = subprocess.CompletedProcess(proc.args, proc.returncode, out, rest)
    return result, peak, int(maxrss) * 1024


def rss_feed(name: str, n: int = PER_FEED) -> str:
    items = "".join(
        f"<item><title>{name} story {i}</title><link>https://{name}.example/{i}</link>"
        f"<guid>{name}-{i}</guid><pubDate>Mon, 0{i + 1} Jun 2026 10:00:00 +0000</pubDate></item>"
        for i in range(n)
    )
    return f'<rss version="2.0"><channel><title>{name}</title>{items}</channel></rss>'


def good_sources(feed_server: FeedServer) -> str:
    lines = []
    for i in range(GOOD):
        feed_server.put(f"/good{i}.xml", rss_feed(f"good{i}"))
        lines.append(
            f"  - {{key: good{i}, name: Good {i}, url: '{feed_server.url(f'/good{i}.xml')}'}}"
        )
    return "\n".join(lines) + "\n"


def status(db: str) -> dict[str, dict[str, object]]:
    out = subprocess.run(
        [str(INGEST), "status", "--db", db, "--format", "json"],
        capture_output=True, text=True, cwd=ROOT, check=True,
    )  # fmt: skip
    return {r["key"]: r for r in json.loads(out.stdout)}


def latest(db: str) -> list[dict[str, object]]:
    out = subprocess.run(
        [str(INGEST), "latest", "--db", db, "--format", "json", "--limit", "1000"],
        capture_output=True, text=True, cwd=ROOT, check=True,
    )  # fmt: skip
    rows: list[dict[str, object]] = json.loads(out.stdout)
    return rows


# -- 1. the double-gzip bomb ------------------------------------------------------------


def test_double_gzip_bomb_fails_as_too_large_in_bounded_memory(
    feed_server: FeedServer, bomb: bytes, db_url: str, tmp_path: Path
) -> None:
    assert len(bomb) < 32 * 1024
    feed_server.put(
        "/bomb.xml", bomb, headers={"Content-Encoding": "gzip, gzip"}, gzip=False, etag=False
    )
    feed_server.put(
        "/triple.xml",
        gzip.compress(gzip.compress(gzip.compress(rss_feed("triple").encode()))),
        headers={"Content-Encoding": "gzip, gzip, gzip"},
        gzip=False,
    )
    feed_server.put(
        "/double.xml",
        gzip.compress(gzip.compress(rss_feed("double").encode())),
        headers={"Content-Encoding": "gzip, gzip"},
        gzip=False,
    )
    sources = tmp_path / "sources.yaml"
    sources.write_text(
        "defaults:\n  timeout: 20s\nsources:\n"
        f"  - {{key: bomb, name: Bomb, url: '{feed_server.url('/bomb.xml')}'}}\n"
        f"  - {{key: triple, name: Triple, url: '{feed_server.url('/triple.xml')}'}}\n"
        f"  - {{key: double, name: Double, url: '{feed_server.url('/double.xml')}'}}\n"
        + good_sources(feed_server)
    )
    result, peak, largest = run_measured("run", "--sources", str(sources), "--db", db_url)
    assert result.returncode == 1, result.stderr  # the bomb and the triple failed
    assert "Traceback" not in result.stderr
    assert peak < 300 * MB, f"process tree peaked at {peak / MB:.0f} MB"
    assert largest < 300 * MB, f"one process peaked at {largest / MB:.0f} MB"
    assert feed_server.last("/bomb.xml").status == 200  # it was really sent

    rows = status(db_url)
    assert rows["bomb"]["last_error_kind"] == "too_large"
    assert "10485760-byte cap" in str(rows["bomb"]["last_error"])
    assert rows["triple"]["last_error_kind"] == "fetch"
    assert "at most 2" in str(rows["triple"]["last_error"])
    assert rows["double"]["last_error"] is None and rows["double"]["items"] == PER_FEED
    stories = latest(db_url)
    assert len(stories) == (GOOD + 1) * PER_FEED
    for i in range(GOOD):
        assert rows[f"good{i}"]["items"] == PER_FEED


# -- 3 and 4. values that used to pass `ingest check` -------------------------------------

CONFIG_CASES = Path(__file__).parent / "data" / "config"


@pytest.mark.parametrize("case", ["hostile_values", "hostile_text", "merge_budget"])
def test_ingest_check_and_run_refuse_what_used_to_crash_later(
    case: str, db_url: str, tmp_path: Path
) -> None:
    """`ingest check` exits 2 naming each value at its line; `ingest run` refuses the file
    the same way and never opens the database."""
    path = CONFIG_CASES / f"{case}.yaml"
    expected = json.loads((CONFIG_CASES / f"{case}.expected.json").read_text())["problems"]
    for command in (["check"], ["run", "--db", db_url]):
        result = subprocess.run(
            [str(INGEST), *command, "--sources", str(path)],
            capture_output=True, text=True, cwd=ROOT, timeout=120,
        )  # fmt: skip
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr
        lines = result.stderr.splitlines()
        assert lines[-1] == f"{len(expected)} problem(s); nothing was run."
        for want, got in zip(expected, lines, strict=False):
            assert got.replace(str(path), "sources.yaml").startswith(want), (want, got)
        assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", result.stderr)  # escaped
    assert not (tmp_path / "ingest.sqlite3").exists()


def test_a_merge_key_bomb_is_read_at_once(tmp_path: Path) -> None:
    """`<<: [*prev, *prev]` nested 25 deep, 1 KB: 2**25 merges if expanded naively."""
    result = subprocess.run(
        [str(INGEST), "check", "--sources", str(CONFIG_CASES / "merge_bomb.yaml")],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "26 sources (26 enabled), no problems" in result.stdout


# -- 5. control characters from feeds ---------------------------------------------------

HOSTILE_JSON = {
    "version": "https://jsonfeed.org/version/1.1",
    "title": "Hostile",
    "items": [
        {
            "id": "nul",
            "url": "https://hostile.example/a\u0000b",
            "image": "https://hostile.example/i\u0000.png",
            "title": "A NUL\u0000 in the title",
            "authors": [{"name": "Mal\u0000lory"}],
            "date_published": "2026-06-01T10:00:00Z",
        },
        {
            "id": "esc",
            "url": "https://hostile.example/esc",
            "summary": "\u001b]0;owned\u0007Breaking \u001b[2Jnews from the summary",
            "date_published": "2026-06-01T11:00:00Z",
        },
        {
            "id": "c1",
            "url": "https://hostile.example/c1",
            "title": "C1 \u009b2J and [bold red]markup[/bold red]",
            "date_published": "2026-06-01T12:00:00Z",
        },
    ],
}
C0 = re.compile(r"[\x00-\x1f\x7f]")


def test_controls_from_feeds_are_stripped_and_never_printed_raw(
    feed_server: FeedServer, db_url: str, tmp_path: Path
) -> None:
    feed_server.put("/hostile.json", json.dumps(HOSTILE_JSON), "application/feed+json")
    sources = tmp_path / "sources.yaml"
    sources.write_text(
        "sources:\n"
        f"  - {{key: hostile, name: Hostile, url: '{feed_server.url('/hostile.json')}'}}\n"
        + good_sources(feed_server)
    )
    run = subprocess.run(
        [str(INGEST), "run", "--sources", str(sources), "--db", db_url],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    rows = status(db_url)
    assert rows["hostile"]["items"] == 3 and rows["hostile"]["last_error"] is None
    stories = {s["url"]: s for s in latest(db_url) if "hostile" in str(s["url"])}
    assert set(stories) == {
        "https://hostile.example/ab",
        "https://hostile.example/esc",
        "https://hostile.example/c1",
    }
    nul = stories["https://hostile.example/ab"]
    assert nul["image_url"] == "https://hostile.example/i.png"
    assert nul["title"] == "A NUL in the title" and nul["author"] == "Mallory"
    esc = stories["https://hostile.example/esc"]
    assert esc["title"].startswith("]0;ownedBreaking [2Jnews")
    for story in stories.values():
        for value in story.values():
            assert not C0.search(str(value)), story
    assert len(latest(db_url)) == GOOD * PER_FEED + 3

    # printed for people: C1 escaped, rich markup shown as typed, nothing raw
    table = subprocess.run(
        [str(INGEST), "latest", "--db", db_url, "--limit", "100"],
        capture_output=True, text=True, cwd=ROOT, check=True,
    )  # fmt: skip
    tried = subprocess.run(
        [str(INGEST), "try", "hostile", "--sources", str(sources)],
        capture_output=True, text=True, cwd=ROOT, check=True,
    )  # fmt: skip
    for out in (table.stdout, tried.stdout):
        assert "C1 \\x9b2J and [bold red]markup[/bold red]" in out, out
        assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", out), out
        assert "]0;ownedBreaking" in out
