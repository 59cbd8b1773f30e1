"""The `ingest` command: arguments in, printing out, exit codes.

Subcommands: check, run, try, latest, status, schedule, health, serve, export
(and dispatch, worker: distributed.py; add, disable, opml: sources.py).
Each takes `--sources FILE` and `--db URL`.  This module parses arguments,
calls config, pipeline, trial and store, and prints what they return (the
tables and JSON of latest, status and try are laid out in format.py); it
holds no pipeline logic.  Heavy
libraries are imported inside the subcommand that needs them, so a short
command starts fast.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import ingest.cli.format as cli_format
from ingest import __version__, errors
from ingest.cli.exits import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from ingest.runtime import gcpause
from ingest.stages.controls import printable

if TYPE_CHECKING:
    from ingest.config import Config
    from ingest.config.site import SiteSpec
    from ingest.store import Store

__all__ = ["main"]


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
    run.add_argument(
        "--latest", type=int, default=0, metavar="N",
        help="then print the N latest stories of the same database (as `ingest latest`)",
    )  # fmt: skip
    run.add_argument(
        "--format", choices=("text", "json"), default="text",
        help="text (a line per source, the default) or json (one object per line)",
    )  # fmt: skip
    trial = sub.add_parser(
        "try", parents=[common], help="poll one source (a key, or a URL) once; store nothing"
    )
    trial.add_argument("target", metavar="KEY|URL", help="a source's key, or a feed or page URL")
    trial.add_argument("--kind", choices=("feed", "page"), help="for a URL: feed (default) or page")
    trial.add_argument(
        "--select", action="append", default=[], metavar="FIELD=CSS",
        help="for a URL: a selector, e.g. --select 'item=ul.news > li' (repeat; makes it a page)",
    )  # fmt: skip
    trial.add_argument(
        "--format", choices=("table", "json"), default="table",
        help="table (the default) or json (every field of every entry)",
    )  # fmt: skip
    latest = sub.add_parser("latest", parents=[common], help="print the current list")
    latest.add_argument("--section", help="only this section (latest, blogs, videos, ...)")
    latest.add_argument("--source", help="only stories this source carried")
    latest.add_argument("--limit", type=int, default=20, help="how many stories (20)")
    latest.add_argument(
        "--search", metavar="WORDS",
        help="only stories with every word in title, summary or text; most relevant first",
    )  # fmt: skip
    latest.add_argument(
        "--format", choices=("table", "json"), default="table",
        help="table (the default) or json (every field, for programs)",
    )  # fmt: skip
    status = sub.add_parser("status", parents=[common], help="show each source's state")
    status.add_argument(
        "--format", choices=("table", "json"), default="table",
        help="table (for people, the default) or json (every field)",
    )  # fmt: skip
    status.add_argument(
        "--wide", action="store_true", help="every column (the compact table fits 100 columns)"
    )
    metrics = argparse.ArgumentParser(add_help=False)  # long-running processes: docs/deploying.md
    metrics.add_argument(
        "--metrics-port", type=int, metavar="PORT",
        help="serve Prometheus metrics at http://HOST:PORT/metrics (default: off)",
    )  # fmt: skip
    metrics.add_argument(
        "--metrics-host", default="127.0.0.1", metavar="HOST",
        help="address the metrics listen on (127.0.0.1; 0.0.0.0 for every interface)",
    )  # fmt: skip
    schedule = sub.add_parser(
        "schedule", parents=[common, metrics],
        help="run the unattended service (= python scheduler.py)",
    )  # fmt: skip
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
    health.add_argument(
        "--format", choices=("text", "json"), default="text", help="text (the default) or json"
    )
    web = argparse.ArgumentParser(add_help=False)  # serve and export: docs/downstream.md
    web.add_argument("--templates", type=Path, metavar="DIR", help="your templates, tried first")
    web.add_argument("--base-url", metavar="URL", help="public address, for absolute feed links")
    serve = sub.add_parser("serve", parents=[common, web], help="serve the page, API and feeds")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on (8000)")
    serve.add_argument(
        "--no-status", dest="status_page", action="store_false",
        help="do not serve the source-health page at /status",
    )  # fmt: skip
    export = sub.add_parser("export", parents=[common, web], help="write the site as files")
    export.add_argument("--out", type=Path, required=True, metavar="DIR", help="where to write")
    export.add_argument(
        "--limit", type=int, default=100, help="stories per JSON file and feed (100; at least 1)"
    )
    import ingest.cli.distributed as cli_distributed
    import ingest.cli.sources as cli_sources

    cli_distributed.add_parsers(sub, [common, metrics], _seconds)
    cli_sources.add_parsers(sub, common)
    refilter = sub.add_parser(
        "refilter", parents=[common], help="apply changed rules to stored stories (hide/show)"
    )
    refilter.add_argument("--days", type=float, default=30.0, help="how far back (30)")
    refilter.add_argument("--dry-run", action="store_true", help="show the changes only")
    return p


def _seconds(text: str) -> float:
    from ingest.config import MAX_DURATION, parse_duration

    try:
        seconds = parse_duration(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from e
    if seconds > MAX_DURATION:
        raise argparse.ArgumentTypeError(f"{text!r} is longer than 100 years")
    return seconds


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command != "run":  # `ingest run` starts up until its polls begin (cli/run.py)
        gcpause.settle()
    import ingest.cli.logs as logs

    base = logging.INFO if args.command in ("schedule", "dispatch", "worker") else logging.WARNING
    logs.setup(
        base - 10 * min(args.verbose, 2),
        getattr(args, "log_format", "text"),
        # `ingest run` prints a line per poll itself; the log would say it twice
        quiet_polls=args.command == "run" and not args.verbose,
    )
    handler = {
        "check": _check, "run": _run, "try": _try, "latest": _latest, "status": _status,
        "schedule": _schedule, "health": _health, "serve": _serve, "export": _export,
        "dispatch": _distributed, "worker": _distributed,
        "add": _sources_file, "disable": _sources_file, "opml": _sources_file,
        "refilter": _refilter,
    }  # fmt: skip
    try:
        code: int = handler[args.command](args)
    except errors.ConfigError as e:
        for problem in e.problems:
            print(printable(str(problem)), file=sys.stderr)
        print(f"{len(e.problems)} problem(s); nothing was run.", file=sys.stderr)
        return EXIT_USAGE
    except errors.IngestError as e:
        print(printable(f"ingest: {e}", lines=True), file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("ingest: interrupted", file=sys.stderr)
        return 130
    return code


def _refilter(args: argparse.Namespace) -> int:
    from ingest.runtime.refilter import main as refilter_main

    return refilter_main(args)


def _load(args: argparse.Namespace) -> Config:
    from ingest.config import load_config

    return load_config(args.sources)


def _open_store(args: argparse.Namespace, *, create: bool = False) -> Store:
    """The database; only the commands that write (`create=True`) create or migrate it."""
    from ingest.store import Store

    return Store.open(args.db) if create else Store.open_existing(args.db)


# -- check --------------------------------------------------------------------


def _check(args: argparse.Namespace) -> int:
    from ingest.stages.netguard import NetGuard

    config = _load(args)
    NetGuard.from_settings(config.settings)  # a bad $INGEST_ALLOW_NETWORKS is a problem too
    enabled = len(config.enabled())
    count = len(config.sources)
    noun = "source" if count == 1 else "sources"
    print(f"{args.sources}: {count} {noun} ({enabled} enabled), no problems")
    return EXIT_OK


# -- run ----------------------------------------------------------------------


def _run(args: argparse.Namespace) -> int:
    import ingest.cli.run as cli_run

    return cli_run.run(args)


# -- schedule / health ---------------------------------------------------------


def _schedule(args: argparse.Namespace) -> int:
    from ingest.runtime import eventloop, metrics
    from ingest.service.scheduler import SERVICE_NAME, Service, Timing

    with (
        _open_store(args, create=True) as store,
        metrics.running(SERVICE_NAME, args.metrics_port, args.metrics_host) as counted,
    ):
        service = Service(
            args.sources, store, timing=Timing(grace=args.grace), once=args.once, metrics=counted
        )
        return eventloop.run(service.run())


def _distributed(args: argparse.Namespace) -> int:
    import ingest.cli.distributed as cli_distributed

    code: int = getattr(cli_distributed, args.command)(args)
    return code


def _sources_file(args: argparse.Namespace) -> int:
    import ingest.cli.sources as cli_sources

    code: int = getattr(cli_sources, args.command)(args)
    return code


def _health(args: argparse.Namespace) -> int:
    from datetime import UTC

    from ingest.service.health import WORKER_PREFIX, assess, pick_service

    with _open_store(args) as store:
        beats = {r["name"]: r for r in store.services()}
        # schedule.SERVICE_NAME and dispatch.DISPATCHER_NAME (not imported: their modules
        # pull in APScheduler and procrastinate; tests/test_distributed.py checks the names)
        name, row = pick_service({n: beats.get(n) for n in ("scheduler", "dispatcher")})
        workers = [r for n, r in beats.items() if n.startswith(WORKER_PREFIX)]
        verdict = assess(
            row, store.status(), datetime.now(UTC),
            max_silence=args.max_silence, stale=args.stale, name=name, workers=workers,
        )  # fmt: skip
    if args.format == "json":
        out = {"ok": verdict.ok, "service": verdict.service, "scheduler": verdict.scheduler,
               "problems": list(verdict.problems), "stale": list(verdict.stale),
               "stale_processes": list(verdict.stale_processes),
               "workers": [{"name": w.name, "state": w.state, "silence": round(w.silence, 1)}
                           for w in verdict.workers]}  # fmt: skip
        print(json.dumps(out))
    else:
        if verdict.ok:
            print(f"healthy: {verdict.scheduler}")
            alive = [w for w in verdict.workers if w.state == "alive"]
            if alive:
                print(f"{len(alive)} worker(s) alive: " + ", ".join(w.name for w in alive))
        else:
            print(f"UNHEALTHY: {len(verdict.problems)} problem(s)")
            for problem in verdict.problems:
                print(f"- {problem}")
    return EXIT_OK if verdict.ok else EXIT_FAILED


# -- serve / export (ingest.web) ----------------------------------------------


def _site(args: argparse.Namespace) -> SiteSpec:
    """The `site:` block of the sources file; the defaults where there is no file (a
    server that only reads the database need not have one)."""
    from ingest.config.site import SiteSpec

    return _load(args).site if Path(args.sources).is_file() else SiteSpec()


def _serve(args: argparse.Namespace) -> int:
    from ingest.web.app import serve

    spec = _site(args)
    with _open_store(args) as store:
        return serve(store, host=args.host, port=args.port, templates=args.templates,
                     base_url=args.base_url, status_page=args.status_page,
                     spec=spec)  # fmt: skip


def _export(args: argparse.Namespace) -> int:
    from ingest.web.export import export_site

    if args.limit < 1:
        print("ingest: --limit must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    spec = _site(args)
    with _open_store(args) as store:
        report = export_site(store, args.out, templates=args.templates,
                             base_url=args.base_url, limit=args.limit, spec=spec)  # fmt: skip
    print(report.summary())
    return EXIT_OK


# -- try, latest, status (laid out by cli_format) ---------------------------


def _try(args: argparse.Namespace) -> int:
    from ingest.model import Settings
    from ingest.runtime.trial import run_trial, source_for_url

    target = args.target
    if "://" in target:
        try:
            source = source_for_url(target, args.kind, args.select)
        except ValueError as e:
            print(f"ingest try: {e}", file=sys.stderr)
            return EXIT_USAGE
        settings = _load(args).settings if Path(args.sources).is_file() else Settings()
    else:
        if args.kind or args.select:
            print("ingest try: --kind and --select are for a URL, not a key", file=sys.stderr)
            return EXIT_USAGE
        config = _load(args)
        found = config.get(target)
        if found is None:
            print(printable(f"ingest: no source named {target} in {args.sources}"), file=sys.stderr)
            return EXIT_USAGE
        source, settings = found, config.settings
    trial = run_trial(source, settings)
    if args.format == "json":
        print(cli_format.trial_json(trial))
    elif trial.ok:
        cli_format.print_trial(trial)
    else:
        status = f" HTTP {trial.status}" if trial.status else ""
        print(printable(f"FAIL  {source.key}{status}: {trial.error}"), file=sys.stderr)
    return EXIT_OK if trial.ok else EXIT_FAILED


def _latest(args: argparse.Namespace) -> int:
    if args.limit < 1:
        print("ingest: --limit must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    from ingest.store.search import terms as search_terms

    if args.search is not None and not search_terms(args.search):
        print("ingest: --search needs at least one word (letters or digits)", file=sys.stderr)
        return EXIT_USAGE
    with _open_store(args) as store:
        rows = store.latest(
            section=args.section, source=args.source, limit=args.limit, search=args.search
        )
    if args.format == "json":
        print(cli_format.latest_json(rows))
    else:
        cli_format.print_latest(rows)
    return EXIT_OK


def _status(args: argparse.Namespace) -> int:
    from datetime import UTC

    with _open_store(args) as store:
        rows = store.status()
        jobs = store.queue_counts()  # distributed mode (PostgreSQL with procrastinate's table)
        cooling = store.host_cooldowns(datetime.now(UTC))  # hosts every source leaves alone
    if args.format == "json":
        print(cli_format.status_json(rows))
    else:
        if args.wide:
            cli_format.print_status_wide(rows)
        else:
            cli_format.print_status(rows, now=datetime.now(UTC))
        if jobs is not None:
            print("queue: " + ", ".join(f"{n} {k}" for k, n in jobs.items()))
        for c in cooling:
            until = f"{c['until']:%Y-%m-%d %H:%M:%S} UTC"
            print(f"cooling down: {c['host']} until {until} ({c['reason']})")
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
