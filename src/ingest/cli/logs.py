"""Log set-up for the command line and the service: readable lines or JSON lines.

One job: configure the `logging` root handler.  `--log-format json` writes
one JSON object per line with the time, level, logger, message and, for poll
lines, the structured fields (source, status, new, updated, entries, ms,
error) that pipeline.py attaches; log shippers read that without parsing
text.  Text lines show control characters as escapes (`controls.printable`).
It does not decide what is logged.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from ingest.stages.controls import printable

__all__ = ["POLL_FIELDS", "JsonFormatter", "TextFormatter", "setup"]

POLL_FIELDS = ("source", "status", "new", "updated", "entries", "ms", "error")


class JsonFormatter(logging.Formatter):
    """One JSON object per record."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in POLL_FIELDS:
            if hasattr(record, field):
                out[field] = getattr(record, field)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """Readable lines, with control characters (from a server's message, a story, a
    config value) shown as escapes, never sent to the terminal raw."""

    def format(self, record: logging.LogRecord) -> str:
        return printable(super().format(record), lines=True)


def setup(level: int, fmt: str = "text", *, quiet_polls: bool = False) -> None:
    """Send logs to stderr at `level`, as text or JSON lines.

    `quiet_polls` keeps the per-poll lines (logger `ingest.poll`) to errors.
    """
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("ingest.poll").setLevel(logging.ERROR if quiet_polls else logging.NOTSET)
    for chatty in ("apscheduler", "alembic", "httpx"):  # our own poll line says it all
        logging.getLogger(chatty).setLevel(max(level, logging.WARNING))
    # Python warnings (libraries' advice to programmers) become log records of their
    # own logger, shown only with -v; they never reach the terminal as raw text.
    logging.captureWarnings(True)
    logging.getLogger("py.warnings").setLevel(logging.DEBUG if level < logging.INFO else 100)
    # procrastinate logs a line per job deferred and per job run: only with -v
    logging.getLogger("procrastinate").setLevel(
        logging.WARNING if level >= logging.INFO else logging.NOTSET
    )
