"""`ingest run`: one pass over the sources, a line per source, the exit code.

One job: start the run's database process first, while this process is
still small (parse workers, if a document needs them, are the pipeline's
business), run the pipeline once and print what each source came to (a progress bar too on a
terminal).  It holds no pipeline logic (`ingest.runtime.pipeline`) and no layout of
its own (`ingest.cli.format`); the rest of the command line is `ingest.cli.main`.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING, Any

from ingest.cli.exits import EXIT_FAILED, EXIT_OK, EXIT_USAGE

if TYPE_CHECKING:
    from ingest.model import SourceReport
    from ingest.runtime.store_process import StoreProcess

__all__ = ["run"]


def run(args: argparse.Namespace) -> int:
    """`ingest run`: poll the enabled (or `--only`) sources once, print a line each."""
    from ingest.runtime import gcpause
    from ingest.runtime.store_process import StoreProcess

    # First, while this process is small and has no threads: the database in a child
    # that imports SQLAlchemy while we load the config and the HTTP stack.  No cyclic
    # collection until the polling starts (runtime/gcpause.py): start-up is allocation.
    with gcpause.starting(), StoreProcess(args.db) as store:
        code = _run_with(args, store)
    if args.latest > 0 and code != EXIT_USAGE and args.format == "text":
        import ingest.cli.format as cli_format
        from ingest.store import Store

        with Store.open_existing(args.db) as db:
            cli_format.print_latest(db.latest(limit=args.latest))
    return code


def _run_with(args: argparse.Namespace, store: StoreProcess) -> int:
    from ingest.config import load_config
    from ingest.runtime import pipeline

    config = load_config(args.sources)
    chosen = list(config.enabled())
    if args.only:
        unknown = [k for k in args.only if k not in config.by_key]
        if unknown:
            print(
                f"ingest: no source named {', '.join(unknown)} in {args.sources}", file=sys.stderr
            )
            return EXIT_USAGE
        chosen = [config.by_key[k] for k in args.only]
    if not chosen:
        print(f"{args.sources}: no enabled sources; nothing to do")
        return EXIT_OK
    store.open_soon()  # the database opens (or is created) while the HTTP stack loads
    started = time.perf_counter()
    with _RunPrinter(len(chosen), args.format == "json") as out:
        reports = pipeline.run(chosen, store, config.settings, progress=out.report)
    failed = [r for r in reports if not r.ok]
    if args.format == "text":
        from ingest.cli.format import run_summary

        print(run_summary(reports, time.perf_counter() - started))
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
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self._progress = Progress(
                TextColumn("{task.description}", markup=False),
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
        import ingest.cli.format as cli_format

        line = cli_format.report_json(r) if self.json_lines else cli_format.report_line(r)
        if self._progress is not None:
            from rich.text import Text

            # a Text, not markup=False: print's options apply to the live bar redrawn with it
            self._progress.console.print(Text(line), highlight=False, soft_wrap=True)
            self._progress.advance(self._task)
        else:
            print(line, flush=True)
