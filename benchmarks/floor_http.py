#!/usr/bin/env python3
"""The floor under any unchanged re-poll built on httpx over aiohttp: imports plus the GETs.

    python benchmarks/floor_http.py [--feeds 200] [--items 25] [--delay-ms 40]
        [--concurrency 64] [--per-host 8] [--repeat 5] [--feedlab ../shared/feedlab]

Serves a feedlab corpus over loopback (as bench_vs_reader.py does), then
times, as whole processes: a minimal client that imports httpx, aiohttp and
PyYAML, reads the sources file and sends every feed one conditional GET
(ETags primed by a first pass) with the same limits as `ingest run`, and
nothing else (no database, no parsing, no reports); `ingest run`'s own
unchanged re-poll; and reader's (feedlab/peer_reader.py).  It prints the
medians and what 3x reader's speed would need.  It measures; it asserts
nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from lab import compile_sources, corpus_arguments, free_port, generate, measure, serving

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent

CLIENT = """
import sys
sys.modules.setdefault("httpx._main", None)  # as ingest does: not httpx's CLI
import asyncio, json
import aiohttp, httpx, yaml
from httpx_aiohttp import AiohttpTransport

sources, etags_path, limit, per_host = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
with open(sources) as f:
    urls = [s["url"] for s in yaml.safe_load(f)["sources"]]
try:
    with open(etags_path) as f:
        etags = json.load(f)
except FileNotFoundError:
    etags = {}

async def main():
    def session():
        connector = aiohttp.TCPConnector(limit=limit, limit_per_host=per_host)
        return aiohttp.ClientSession(connector=connector)
    async with httpx.AsyncClient(transport=AiohttpTransport(client=session)) as client:
        async def one(url):
            headers = {"If-None-Match": etags[url]} if url in etags else {}
            r = await client.get(url, headers=headers)
            return url, r.status_code, r.headers.get("etag")
        answers = await asyncio.gather(*(one(u) for u in urls))
    if not etags:
        with open(etags_path, "w") as f:
            json.dump({u: e for u, _, e in answers if e}, f)
    print(json.dumps(sorted({status for _, status, _ in answers})))

asyncio.run(main())
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    corpus_arguments(ap, ROOT)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--per-host", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()

    compile_sources(ROOT)
    work = Path(tempfile.mkdtemp(prefix="ingest-floor-"))
    port = free_port()
    corpus = work / "corpus"
    generate(a.feedlab, corpus, feeds=a.feeds, items=a.items, port=port, hosts=a.hosts)
    sources = corpus / "sources.yaml"
    etags = work / "etags.json"
    client = [sys.executable, "-c", CLIENT, str(sources), str(etags),
              str(a.concurrency), str(a.per_host)]  # fmt: skip
    db = f"sqlite:///{work / 'ingest.sqlite3'}"
    ingest = [str(VENV_BIN / "ingest"), "run", "--sources", str(sources), "--db", db]
    reader = [sys.executable, str(a.feedlab / "peer_reader.py"), str(sources),
              str(work / "reader.sqlite")]  # fmt: skip
    env = {**os.environ, "INGEST_ALLOW_NETWORKS": "127.0.0.0/8"}
    seconds: dict[str, list[float]] = {"floor": [], "ingest": [], "reader": []}
    try:
        with serving(a.feedlab, corpus, port, a.hosts, a.delay_ms):
            for cmd in (client, ingest, reader):  # first passes: ETags, stories, entries
                measure(cmd, env, ROOT)
            for _ in range(a.repeat):  # interleaved, so that drift hits all three alike
                for label, cmd in (("floor", client), ("ingest", ingest), ("reader", reader)):
                    r = measure(cmd, env, ROOT)
                    if r["rc"] != 0:
                        print(f"{label} exited {r['rc']}:\n{r['stderr']}", file=sys.stderr)
                    if label == "floor" and json.loads(str(r["stdout"])) != [304]:
                        print(f"floor: not all 304: {r['stdout']}", file=sys.stderr)
                    seconds[label].append(float(r["seconds"]))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    med = {k: statistics.median(v) for k, v in seconds.items()}
    print(f"unchanged re-poll, {a.feeds} feeds, --delay-ms {a.delay_ms:g}, "
          f"{a.concurrency} in flight ({a.per_host} per host), median of {a.repeat}:")  # fmt: skip
    print(f"  httpx+aiohttp floor (imports + GETs only) {med['floor']:.3f} s")
    print(f"  ingest run                                {med['ingest']:.3f} s")
    print(f"  reader (peer_reader.py)                   {med['reader']:.3f} s")
    print(f"  3x reader's speed needs                   {med['reader'] / 3:.3f} s")
    print(
        f"  ingest / floor = {med['ingest'] / med['floor']:.2f}; "
        f"floor / (reader / 3) = {med['floor'] / (med['reader'] / 3):.2f}"
    )


if __name__ == "__main__":
    main()
