"""`make demo`: the whole thing working offline, in one command.

One job: start the sample server (`ingest.demo.server`: feeds and a page in
the shapes of the real sources, over loopback), write the demo's
sources.yaml pointing at it, poll it once into a fresh demo database with
`ingest run`, then serve the collection page with `ingest serve` at an
address it prints, until Ctrl-C stops everything.  It adds no logic of its
own to ingest: the same commands a user runs do the work.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]

DEFAULT_DIR = Path("db") / "demo"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m ingest.demo",
        description="Ingest sample feeds over loopback into a demo database and serve the page.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address of the page (127.0.0.1)")
    p.add_argument(
        "--port", type=int, default=8000, help="port of the page (8000; another if it is taken)"
    )
    p.add_argument(
        "--dir", type=Path, default=DEFAULT_DIR, metavar="DIR",
        help="where the demo's sources.yaml and database go (db/demo), emptied first",
    )  # fmt: skip
    args = p.parse_args(argv)
    from ingest import errors
    from ingest.cli.exits import EXIT_OK
    from ingest.cli.main import main as ingest_main
    from ingest.demo.server import DATA, SampleServer, render
    from ingest.web.app import listen

    args.dir.mkdir(parents=True, exist_ok=True)
    for old in args.dir.glob("demo.sqlite3*"):
        old.unlink()
    db = f"sqlite:///{args.dir / 'demo.sqlite3'}"
    sources = args.dir / "sources.yaml"
    try:
        sock = listen(args.host, args.port)
    except errors.IngestError:  # taken: any free port will do for a demo
        sock = listen(args.host, 0)
    port = sock.getsockname()[1]
    with sock, SampleServer() as samples:
        from datetime import UTC, datetime

        text = render((DATA / "sources.yaml").read_text("utf-8"), samples.url, datetime.now(UTC))
        sources.write_text(text, "utf-8")
        print(f"demo: sample feeds on {samples.url}/, sources in {sources}, database {db}")
        code = ingest_main(["run", "--sources", str(sources), "--db", db])
        if code != EXIT_OK:
            print("demo: the run failed (see above); the page shows what was stored")
        print(f"\ndemo: the collection page is at http://{args.host}:{port}/ (Ctrl-C stops it)\n")
        sys.stdout.flush()
        try:
            return _serve(str(sources), db, args.host, sock)
        except KeyboardInterrupt:  # uvicorn stops, then raises the Ctrl-C it caught again
            print("demo: stopped")
            return 0


def _serve(sources: str, db: str, host: str, sock: object) -> int:
    import socket

    from ingest.config import load_config
    from ingest.store import Store
    from ingest.web.app import serve

    assert isinstance(sock, socket.socket)
    spec = load_config(sources).site
    with Store.open_existing(db) as store:
        return serve(store, host=host, port=sock.getsockname()[1], spec=spec, sock=sock)
