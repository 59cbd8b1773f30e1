"""The `ingest` console script's entry point: the collector paused before the command loads.

One job: start `ingest.cli.main.main` inside `runtime.gcpause.starting()`, so
that importing the command and its libraries runs without cyclic garbage
collection (runtime/gcpause.py says why).  It parses nothing and decides
nothing: `main` settles the pause as soon as it knows the command, except for
`ingest run`, whose start-up goes on until its polls begin.  The process ends
when `main` returns, so what the pause froze is left frozen for the teardown.
"""

from __future__ import annotations

from ingest.runtime import gcpause

__all__ = ["main"]


def main() -> int:
    with gcpause.starting(exiting=True):
        from ingest.cli.main import main as command

        return command()
