"""How the `ingest` command shows things: tables for people, JSON for programs.

One job: turn what the pipeline, the store and `ingest try` return (reports,
row dicts, a `Trial`) into text: the lines of `run`, and the `latest`,
`status` and `try` outputs.  It reads no
arguments, opens nothing and decides nothing (cli.py does); rich is imported
only when a table is printed.  Every text meant for people passes
`controls.printable` (control characters become visible escapes) and table
cells are rich `Text`, never markup, so a story or a server's message cannot
drive the terminal or restyle the output.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ingest.controls import printable

if TYPE_CHECKING:
    from ingest.model import Item, SourceReport
    from ingest.trial import Trial

__all__ = [
    "LATEST_FIELDS",
    "STATUS_FIELDS",
    "iso",
    "latest_json",
    "print_latest",
    "print_status",
    "print_trial",
    "report_json",
    "report_line",
    "status_json",
    "story_json",
    "trial_json",
]

LATEST_FIELDS = (
    "id", "url", "title", "summary", "published_at", "first_seen_at", "updated_at", "section",
    "source", "source_name", "sources", "image_url", "author", "date_source", "canonical_url",
    "kind", "duration", "media_url", "is_short", "content",
)  # fmt: skip

STATUS_FIELDS = (
    "key", "name", "url", "kind", "section", "enabled", "in_config", "last_attempt_at",
    "last_success_at", "last_status", "last_entries", "items", "consecutive_failures",
    "next_due_at", "retry_after_until", "last_error", "last_error_kind", "moved_to",
    "backoff_seconds", "disabled_reason", "every_seconds", "cron", "lease_owner",
    "lease_until", "discovered_url", "median_lag_seconds",
)  # fmt: skip


def iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


# -- run ----------------------------------------------------------------------


def report_line(r: SourceReport) -> str:
    return printable(_report_line(r))


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
    if r.discovered_url:
        extra += f"; feed found at {r.discovered_url}: update sources.yaml"
    answer = f" HTTP {r.status}" if r.status else ""  # none: a curated source
    return f"ok    {r.source_key}{answer}: {what} ({r.elapsed_ms} ms){extra}"


def report_json(r: SourceReport) -> str:
    return json.dumps(
        {
            "source": r.source_key, "ok": r.ok, "status": r.status, "new": r.new,
            "updated": r.updated, "entries": r.entries, "not_modified": r.not_modified,
            "unchanged": r.unchanged, "ms": r.elapsed_ms, "error": r.error,
            "error_kind": r.error_kind, "moved_to": r.moved_to, "skipped": r.skipped,
            "discovered_url": r.discovered_url,
        }
    )  # fmt: skip


# -- latest -------------------------------------------------------------------


def story_json(row: Mapping[str, Any]) -> dict[str, Any]:
    """A story's `LATEST_FIELDS`, timestamps ISO 8601: `ingest latest` and /api/items."""
    return {k: iso(row.get(k)) for k in LATEST_FIELDS}


def latest_json(rows: Sequence[Mapping[str, Any]]) -> str:
    return json.dumps([story_json(r) for r in rows], indent=2, ensure_ascii=False)


def print_latest(rows: Sequence[dict[str, Any]]) -> None:
    table = _table(("published", "title", "source", "section"))
    for r in rows:
        table.add_row(
            r["published_at"].strftime("%Y-%m-%d %H:%M"),
            r["title"],
            ",".join(r["sources"]),
            r["section"],
        )
    _print_table(table, empty="no stories yet: run `ingest run` first")


# -- status -------------------------------------------------------------------


def status_json(rows: Sequence[dict[str, Any]]) -> str:
    return json.dumps([{k: iso(r.get(k)) for k in STATUS_FIELDS} for r in rows], indent=2)


def print_status(rows: Sequence[dict[str, Any]]) -> None:
    table = _table(
        ("source", "last attempt", "last success", "HTTP", "items", "lag p50", "fails",
         "backoff", "next due", "error")
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
        if r.get("discovered_url"):
            found = f"feed found at {r['discovered_url']}: update sources.yaml"
            error = (error + "; " if error else "") + found
        table.add_row(
            key,
            _when(r["last_attempt_at"]),
            _when(r["last_success_at"]),
            str(r["last_status"] or ""),
            str(r["items"]),
            _lag(r.get("median_lag_seconds")),
            str(r["consecutive_failures"] or ""),
            _duration(r["backoff_seconds"]),
            _when(r["next_due_at"]),
            error,
        )
    _print_table(table, empty="no sources polled yet: run `ingest run` first")


# -- try ----------------------------------------------------------------------


def _item_dict(item: Item) -> dict[str, Any]:
    return {
        "url": item.url, "canonical_url": item.canonical_url, "entry_key": item.entry_key,
        "title": item.title, "summary": item.summary, "author": item.author,
        "image_url": item.image_url, "published_at": iso(item.published_at),
        "date_source": item.date_source, "section": item.section, "kind": item.kind,
        "duration": item.duration, "media_url": item.media_url, "is_short": item.is_short,
    }  # fmt: skip


def trial_json(trial: Trial) -> str:
    out = {
        "source": trial.source.key, "ok": trial.ok, "status": trial.status, "url": trial.url,
        "final_url": trial.final_url, "discovered_url": trial.discovered_url,
        "moved_to": trial.moved_to, "ms": trial.elapsed_ms, "error": trial.error,
        "error_kind": trial.error_kind,
        "entries": [
            {**_item_dict(t.item), "stored": t.dropped is None, "dropped": t.dropped}
            for t in trial.entries
        ],
    }  # fmt: skip
    return json.dumps(out, indent=2, ensure_ascii=False)


def print_trial(trial: Trial) -> None:
    """A summary line, the notes an editor should act on, then one row per entry."""
    answer = f"HTTP {trial.status}" if trial.status else "no request (curated)"
    kept = len(trial.kept)
    dropped = len(trial.entries) - kept
    where = f"{trial.source.key} {trial.url}" if trial.url else trial.source.key
    entries = f"{len(trial.entries)} {'entry' if len(trial.entries) == 1 else 'entries'}"
    summary = (
        f"{where}: {answer}, {entries}: {kept} would be stored, {dropped} dropped by filters "
        f"({trial.elapsed_ms} ms); nothing was stored"
    )
    print(printable(summary))
    if trial.discovered_url:
        print(printable(f"feed found at {trial.discovered_url}: update sources.yaml"))
    if trial.moved_to:
        print(printable(f"moved permanently to {trial.moved_to}: update sources.yaml"))
    table = _table(("", "published", "kind", "title", "link", "dropped because"))
    for t in trial.entries:
        i = t.item
        kind = i.kind + (" (short)" if i.is_short else "")
        if i.duration:
            kind += f" {i.duration // 60}:{i.duration % 60:02d}"
        date = i.published_at.strftime("%Y-%m-%d %H:%M")
        if i.date_source != "published":
            date += f" ({i.date_source})"
        table.add_row("-" if t.dropped else "+", date, kind, i.title, i.url, t.dropped or "")
    _print_table(table, empty="the document has no entries")


# -- tables -------------------------------------------------------------------


def _duration(seconds: float | None) -> str:
    if not seconds:
        return ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def _lag(seconds: float | None) -> str:
    """A source's median freshness lag; blank when it has no story with a date of its own."""
    return "" if seconds is None else (_duration(seconds) or "0s")


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "never"


class _Table:
    """A rich table whose cells are plain text: markup in a story's title (`[bold]`,
    `[link=...]`) is shown as typed, and control characters as escapes."""

    def __init__(self, columns: Sequence[str]) -> None:
        from rich.table import Table

        self.table = Table(box=None, pad_edge=False, header_style="bold")
        for c in columns:
            self.table.add_column(c, overflow="fold")

    @property
    def row_count(self) -> int:
        return int(self.table.row_count)

    def add_row(self, *cells: str) -> None:
        from rich.text import Text

        self.table.add_row(*(Text(printable(c)) for c in cells))


def _table(columns: Sequence[str]) -> _Table:
    return _Table(columns)


def _print_table(table: _Table, *, empty: str) -> None:
    from rich.console import Console

    if not table.row_count:
        print(empty)
        return
    # on a terminal, fit its width; into a pipe or file, do not wrap cells at 80 columns
    Console(width=None if sys.stdout.isatty() else 240).print(table.table)
