"""The `ingest` console script's entry point: the collector paused before the command loads,
and a reader that stops reading the output ends the command quietly.

One job: start `ingest.cli.main.main` inside `runtime.gcpause.starting()`, so
that importing the command and its libraries runs without cyclic garbage
collection (runtime/gcpause.py says why), and turn a closed standard output
(`ingest status | head -3`) into exit code 1 without a traceback, as Python's
`signal` documentation recommends.  It parses nothing and decides nothing:
`main` settles the pause as soon as it knows the command, except for
`ingest run`, whose start-up goes on until its polls begin.  The process ends
when `main` returns, so what the pause froze is left frozen for the teardown.
"""

from __future__ import annotations

import os
import sys

from ingest.cli.exits import EXIT_FAILED
from ingest.runtime import gcpause

__all__ = ["main"]


def main() -> int:
    try:
        with gcpause.starting(exiting=True):
            from ingest.cli.main import main as command

            code = command()
        sys.stdout.flush()  # here, where a closed pipe can still be caught
    except BrokenPipeError:
        # the reader went away: nothing more can be shown, and the interpreter's own
        # flush at exit must not fail again and print a traceback
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILED
    return code
