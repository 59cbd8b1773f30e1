"""The `ingest` command: arguments in, printing out, exit codes.

Subcommands: check, run, latest, status, schedule, health.  Each takes `--sources FILE` and
`--db URL`.  This module parses arguments, calls config, pipeline and store,
and formats what they return (plain lines, rich tables for people, JSON for
programs); it holds no pipeline logic.  Heavy libraries are imported inside
the subcommand that needs them, so a short command starts fast.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ingest import __version__, errors

if TYPE_CHECKING:
    from ingest.config import Config
    from ingest.model import SourceReport
    from ingest.store import Store

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

LATEST_FIELDS = (
    "id", "url", "title", "summary", "published_at", "first_seen_at", "updated_at", "section",
    "source", "source_name", "sources", "image_url", "author", "date_source", "canonical_url",
)  # fmt: skip


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--sources", default="sources.yaml", metavar="FILE", help="sources file (sources.yaml)"
    )
    common.add_argument(
        "--db",
        metavar="URL",
        help="database URL (default: $INGEST_DATABASE_URL, else sqlite:///db/ingest.sqlite3)",
    )
    common.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    p = argparse.ArgumentParser(
        prog="ingest", description="Keep news lists current from feeds and pages."
    )
    p.add_argument("--version", action="version", version=f"ingest {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("check", parents=[common], help="validate the sources file")
    run = sub.add_parser("run", parents=[common], help="poll every enabled source once, now")
    run.add_argument("--only", nargs="+", metavar="KEY", help="poll only these sources")
    run.add_argument("--format", choices=("text", "json"), default="text")
    latest = sub.add_parser("latest", parents=[common], help="print the current list")
    latest.add_argument("--section", help="only this section (latest, blogs, videos, ...)")
    latest.add_argument("--source", help="only stories this source carried")
    latest.add_argument("--limit", type=int, default=20)
    latest.add_argument("--format", choices=("table", "json"), default="table")
    status = sub.add_parser("status", parents=[common], help="show each source's state")
    status.add_argument("--format", choices=("table", "json"), default="table")
    schedule = sub.add_parser(
        "schedule", parents=[common], help="run the unattended service (= python scheduler.py)"
    )
    schedule.add_argument("--once", action="store_true", help="poll what is due, then exit")
    schedule.add_argument("--log-format", choices=("text", "json"), default="text")
    schedule.add_argument(
        "--grace", type=_seconds, default=20.0, metavar="DURATION",
        help="on SIGTERM, how long polls in flight may finish (default 20s)",
    )  # fmt: skip
    health = sub.add_parser("health", parents=[common], help="exit 1 unless the service is healthy")
    health.add_argument(
        "--max-silence", type=_seconds, default=60.0, metavar="DURATION",
        help="longest time since the scheduler's last tick (default 60s)",
    )  # fmt: skip
    health.add_argument(
        "--stale", type=float, default=3.0, metavar="FACTOR",
        help="a source is stale after FACTOR intervals without success (0: do not check)",
    )  # fmt: skip
    health.add_argument("--format", choices=("text", "json"), default="text")
    return p


def _seconds(text: str) -> float:
    from ingest.config import parse_duration

    try:
        return parse_duration(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from e


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from ingest import logs

    base = logging.INFO if args.command == "schedule" else logging.WARNING
    logs.setup(base - 10 * min(args.verbose, 2), getattr(args, "log_format", "text"))
    handler = {
        "check": _check, "run": _run, "latest": _latest, "status": _status,
        "schedule": _schedule, "health": _health,
    }  # fmt: skip
    try:
        code: int = handler[args.command](args)
    except errors.ConfigError as e:
        for problem in e.problems:
            print(problem, file=sys.stderr)
        print(f"{len(e.problems)} problem(s); nothing was run.", file=sys.stderr)
        return EXIT_USAGE
    except errors.IngestError as e:
        print(f"ingest: {e}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("ingest: interrupted", file=sys.stderr)
        return 130
    return code


def _load(args: argparse.Namespace) -> Config:
    from ingest.config import load_config

    return load_config(args.sources)


def _open_store(args: argparse.Namespace) -> Store:
    from ingest.store import Store

    return Store.open(args.db)


# -- check --------------------------------------------------------------------


def _check(args: argparse.Namespace) -> int:
    config = _load(args)
    enabled = len(config.enabled())
    print(f"{args.sources}: {len(config.sources)} sources ({enabled} enabled), no problems")
    return EXIT_OK


# -- run ----------------------------------------------------------------------


def _run(args: argparse.Namespace) -> int:
    from ingest import pipeline, workers

    if not args.verbose:  # each poll is printed below; the log would say it twice
        logging.getLogger("ingest.poll").setLevel(logging.ERROR)
    config = _load(args)
    chosen = list(config.enabled())
    if args.only:
        known = {s.key: s for s in config.sources}
        unknown = [k for k in args.only if k not in known]
        if unknown:
            print(
                f"ingest: no source named {', '.join(unknown)} in {args.sources}", file=sys.stderr
            )
            return EXIT_USAGE
        chosen = [known[k] for k in args.only]
    if not chosen:
        print(f"{args.sources}: no enabled sources; nothing to do")
        return EXIT_OK
    started = time.perf_counter()
    pool = workers.start_parse_pool()  # first, while this process is small and single-threaded
    try:
        with _open_store(args) as store, _RunPrinter(len(chosen), args.format == "json") as out:
            reports = pipeline.run(
                chosen, store, config.settings, progress=out.report, parse_pool=pool
            )
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    failed = [r for r in reports if not r.ok]
    if args.format == "text":
        new = sum(r.new for r in reports)
        updated = sum(r.updated for r in reports)
        seconds = time.perf_counter() - started
        print(
            f"{len(reports)} sources: {len(reports) - len(failed)} ok, {len(failed)} failed; "
            f"{new} new, {updated} updated; {seconds:.2f}s"
        )
    return EXIT_FAILED if failed else EXIT_OK


class _RunPrinter:
    """One line per source as it finishes; a progress bar too on a terminal."""

    def __init__(self, total: int, json_lines: bool) -> None:
        self.json_lines = json_lines
        self.total = total
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> _RunPrinter:
        if sys.stderr.isatty() and not self.json_lines:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

            self._progress = Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task("polling", total=self.total)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def report(self, r: SourceReport) -> None:
        line = json.dumps(_report_dict(r)) if self.json_lines else _report_line(r)
        if self._progress is not None:
            self._progress.console.print(line, markup=False, highlight=False, soft_wrap=True)
            self._progress.advance(self._task)
        else:
            print(line, flush=True)


def _report_line(r: SourceReport) -> str:
    if r.skipped:
        return f"skip  {r.source_key}: another process is polling it right now"
    if not r.ok:
        status = f" HTTP {r.status}" if r.status else ""
        return f"FAIL  {r.source_key}{status} ({r.elapsed_ms} ms): {r.error}"
    if r.not_modified:
        what = "not modified"
    elif r.unchanged:
        what = "unchanged"
    else:
        what = f"{r.new} new, {r.updated} updated, {r.entries} entries"
    extra = f"; moved permanently to {r.moved_to}" if r.moved_to else ""
    return f"ok    {r.source_key} HTTP {r.status}: {what} ({r.elapsed_ms} ms){extra}"


def _report_dict(r: SourceReport) -> dict[str, Any]:
    return {
        "source": r.source_key, "ok": r.ok, "status": r.status, "new": r.new,
        "updated": r.updated, "entries": r.entries, "not_modified": r.not_modified,
        "unchanged": r.unchanged, "ms": r.elapsed_ms, "error": r.error,
        "error_kind": r.error_kind, "moved_to": r.moved_to, "skipped": r.skipped,
    }  # fmt: skip


# -- schedule / health ---------------------------------------------------------


def _schedule(args: argparse.Namespace) -> int:
    import asyncio

    from ingest.schedule import Service, Timing

    with _open_store(args) as store:
        service = Service(args.sources, store, timing=Timing(grace=args.grace), once=args.once)
        return asyncio.run(service.run())


def _health(args: argparse.Namespace) -> int:
    from datetime import UTC

    from ingest.health import assess
    from ingest.schedule import SERVICE_NAME

    with _open_store(args) as store:
        verdict = assess(
            store.service(SERVICE_NAME),
            store.status(),
            datetime.now(UTC),
            max_silence=args.max_silence,
            stale=args.stale,
        )
    if args.format == "json":
        out = {"ok": verdict.ok, "scheduler": verdict.scheduler,
               "problems": list(verdict.problems), "stale": list(verdict.stale)}  # fmt: skip
        print(json.dumps(out))
    else:
        if verdict.ok:
            print(f"healthy: {verdict.scheduler}")
        else:
            print(f"UNHEALTHY: {len(verdict.problems)} problem(s)")
            for problem in verdict.problems:
                print(f"- {problem}")
    return EXIT_OK if verdict.ok else EXIT_FAILED


# -- latest -------------------------------------------------------------------


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _latest(args: argparse.Namespace) -> int:
    if args.limit < 1:
        print("ingest: --limit must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    with _open_store(args) as store:
        rows = store.latest(section=args.section, source=args.source, limit=args.limit)
    if args.format == "json":
        out = [{k: _iso(r.get(k)) for k in LATEST_FIELDS} for r in rows]
        print(json.dumps(out, indent=2, ensure_ascii=False))
        return EXIT_OK
    table = _table(("published", "title", "source", "section"))
    for r in rows:
        table.add_row(
            r["published_at"].strftime("%Y-%m-%d %H:%M"),
            r["title"],
            ",".join(r["sources"]),
            r["section"],
        )
    _print_table(table, empty="no stories yet: run `ingest run` first")
    return EXIT_OK


# -- status -------------------------------------------------------------------


def _status(args: argparse.Namespace) -> int:
    with _open_store(args) as store:
        rows = store.status()
    if args.format == "json":
        keep = (
            "key", "name", "url", "kind", "section", "enabled", "in_config", "last_attempt_at",
            "last_success_at", "last_status", "last_entries", "items", "consecutive_failures",
            "next_due_at", "retry_after_until", "last_error", "last_error_kind", "moved_to",
            "backoff_seconds", "disabled_reason", "every_seconds", "cron", "lease_owner",
            "lease_until",
        )  # fmt: skip
        print(json.dumps([{k: _iso(r.get(k)) for k in keep} for r in rows], indent=2))
        return EXIT_OK
    table = _table(
        ("source", "last attempt", "last success", "HTTP", "items", "fails", "backoff",
         "next due", "error")
    )  # fmt: skip
    for r in rows:
        key = r["key"] + ("" if r["in_config"] else " (removed)")
        if not r["enabled"]:
            key += " (disabled)"
        error = r["last_error"] or ""
        if r["disabled_reason"]:
            error = f"DISABLED ({r['disabled_reason']}); " + error
        if r["moved_to"]:
            error = (error + "; " if error else "") + f"moved permanently to {r['moved_to']}"
        table.add_row(
            key,
            _when(r["last_attempt_at"]),
            _when(r["last_success_at"]),
            str(r["last_status"] or ""),
            str(r["items"]),
            str(r["consecutive_failures"] or ""),
            _duration(r["backoff_seconds"]),
            _when(r["next_due_at"]),
            error,
        )
    _print_table(table, empty="no sources polled yet: run `ingest run` first")
    return EXIT_OK


def _duration(seconds: float | None) -> str:
    if not seconds:
        return ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "never"


def _table(columns: Sequence[str]) -> Any:
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold")
    for c in columns:
        table.add_column(c, overflow="fold")
    return table


def _print_table(table: Any, *, empty: str) -> None:
    from rich.console import Console

    if not table.row_count:
        print(empty)
        return
    # on a terminal, fit its width; into a pipe or file, do not wrap cells at 80 columns
    Console(width=None if sys.stdout.isatty() else 240).print(table)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
