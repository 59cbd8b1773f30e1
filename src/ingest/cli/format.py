"""How the `ingest` command shows things: tables for people, JSON for programs.

One job: turn what the pipeline, the store and `ingest try` return (reports,
row dicts, a `Trial`) into text: the lines of `run`, and the `latest`,
`status` and `try` outputs.  It reads no
arguments, opens nothing and decides nothing (main.py does); rich is imported
only when a table is printed.  Every text meant for people passes
`controls.printable` (control characters become visible escapes) and table
cells are rich `Text`, never markup, so a story or a server's message cannot
drive the terminal or restyle the output.
"""

from __future__ import annotations

import json
import shutil
import sys
import textwrap
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ingest.model import LISTED_EPOCH, STORY_FIELDS, Story
from ingest.stages.controls import printable

if TYPE_CHECKING:
    from ingest.model import Item, SourceReport
    from ingest.runtime.trial import Trial

__all__ = [
    "STATUS_FIELDS",
    "iso",
    "latest_json",
    "print_latest",
    "print_status",
    "print_status_wide",
    "print_trial",
    "report_json",
    "report_line",
    "run_summary",
    "status_json",
    "story_json",
    "trial_json",
]

STATUS_FIELDS = (
    "key", "name", "url", "kind", "section", "enabled", "in_config", "last_attempt_at",
    "last_success_at", "last_status", "last_entries", "items", "consecutive_failures",
    "next_due_at", "retry_after_until", "last_error", "last_error_kind", "moved_to",
    "backoff_seconds", "disabled_reason", "every_seconds", "cron", "lease_owner",
    "lease_until", "discovered_url", "median_lag_seconds", "every_auto", "poll_interval_seconds",
    "websub_hub", "pushed", "push_state", "push_status", "push_expires_at", "push_last_at",
    "pushes", "push_refused", "push_error",
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
    elif r.notes and not r.entries:  # the document had entries; the filters kept none
        what = "; ".join(r.notes)
    else:
        what = f"{r.new} new, {r.updated} updated, {r.entries} {_plural(r.entries, 'entry')}"
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
            "discovered_url": r.discovered_url, "stories": r.stories, "notes": list(r.notes),
        }
    )  # fmt: skip


def run_summary(reports: Sequence[SourceReport], seconds: float) -> str:
    """The last line of `ingest run`: sources by outcome, stories counted once."""
    skipped = sum(r.skipped for r in reports)
    failed = sum(not r.ok for r in reports)
    ok = len(reports) - skipped - failed
    outcome = f"{ok} ok, {failed} failed" + (f", {skipped} skipped" if skipped else "")
    stories = sum(r.stories for r in reports)
    updated = sum(r.updated for r in reports)
    return (
        f"{len(reports)} {_plural(len(reports), 'source')}: {outcome}; "
        f"{stories} new {_plural(stories, 'story')}, {updated} updated; {seconds:.2f}s"
    )


def _plural(n: int, word: str) -> str:
    if n == 1:
        return word
    return word[:-1] + "ies" if word.endswith("y") else word + "s"


# -- latest -------------------------------------------------------------------


def story_json(row: Story) -> dict[str, Any]:
    """A story's `STORY_FIELDS`, timestamps ISO 8601: `ingest latest` and /api/items."""
    return {k: iso(row.get(k)) for k in STORY_FIELDS}


def latest_json(rows: Sequence[Story]) -> str:
    return json.dumps([story_json(r) for r in rows], indent=2, ensure_ascii=False)


def print_latest(rows: Sequence[Story]) -> None:
    table = _table(("published", "title", "source", "section", "link"))
    for r in rows:
        listed = r.get("date_source") == "listed"  # an editor's undated pick
        table.add_row(
            "(picked)" if listed else r["published_at"].strftime("%Y-%m-%d %H:%M"),
            r["title"],
            ",".join(r["sources"]),
            r["section"],
            r["url"] or r["canonical_url"],
        )
    _print_table(table, empty="no stories yet: run `ingest run` first")


# -- status -------------------------------------------------------------------


def status_json(rows: Sequence[dict[str, Any]]) -> str:
    return json.dumps([{k: iso(r.get(k)) for k in STATUS_FIELDS} for r in rows], indent=2)


def print_status(
    rows: Sequence[dict[str, Any]], *, now: datetime, width: int | None = None
) -> None:
    """The compact table: one line per source (state, last success and next poll as
    ages, stories, median freshness lag, a short error); an error too long for its
    column follows in full, indented, on the lines under its row.  `width` defaults to
    the terminal's (else 100)."""
    if not rows:
        print("no sources polled yet: run `ingest run` first")
        return
    if width is None:
        width = shutil.get_terminal_size((100, 24)).columns if sys.stdout.isatty() else 100
    table: list[tuple[str, ...]] = [
        ("source", "state", "last success", "stories", "lag p50", "next poll", "error")
    ]
    for r in rows:
        table.append(
            (
                r["key"],
                _state(r),
                _ago(r["last_success_at"], now),
                str(r["items"]),
                _lag(r.get("median_lag_seconds")),
                _due(r, now),
                _status_error(r),
            )
        )
    if not any(row[4] for row in table[1:]):  # no source has a lag yet: no column for it
        table = [row[:4] + row[5:] for row in table]
    columns = len(table[0]) - 1  # all but the error, which gets the room left
    widths = [max(len(row[i]) for row in table) for i in range(columns)]
    room = width - sum(widths) - 2 * columns
    for n, row in enumerate(table):
        cells = [c.ljust(w) for c, w in zip(row[:columns], widths, strict=True)]
        error = row[columns]
        # too narrow for a useful excerpt (room < 10): errors go under the rows only
        short = error if len(error) <= room else error[: room - 1] + "\u2026" if room >= 10 else ""
        print("  ".join([*cells, short]).rstrip())
        if n and short != error:
            for part in textwrap.wrap(error, max(width - 4, 40)):
                print("    " + part)


def _state(r: Mapping[str, Any]) -> str:
    if not r["in_config"]:
        return "removed"
    if r["disabled_reason"]:
        return f"disabled ({r['disabled_reason'].split(':', 1)[0].strip()})"
    if not r["enabled"]:
        return "disabled"
    if r["last_attempt_at"] is None:
        return "never polled"
    if r["consecutive_failures"]:
        return f"failing ({r['consecutive_failures']}x)"
    return "ok"


def _status_error(r: Mapping[str, Any]) -> str:
    error = " ".join(str(r["last_error"] or "").split())
    if r["moved_to"]:
        error = (error + "; " if error else "") + f"moved permanently to {r['moved_to']}"
    if r.get("discovered_url"):
        found = f"feed found at {r['discovered_url']}: update sources.yaml"
        error = (error + "; " if error else "") + found
    return _with_push(error, r)


def _with_push(error: str, r: Mapping[str, Any]) -> str:
    """A WebSub subscription's trouble (failed, denied, refused pushes: the row's
    `push_trouble`, as the /status page shows it) after the error."""
    trouble = r.get("push_trouble")
    return (error + "; " if error and trouble else error) + (f"push: {trouble}" if trouble else "")


def _ago(value: datetime | None, now: datetime) -> str:
    if value is None:
        return "never"
    return _span((now - value).total_seconds()) + " ago"


def _due(r: Mapping[str, Any], now: datetime) -> str:
    due: datetime | None = r["next_due_at"]
    if r["disabled_reason"] or not r["enabled"] or not r["in_config"] or due is None:
        return "-"
    seconds = (due - now).total_seconds()
    when = "now" if seconds <= 0 else "in " + _span(seconds)
    return when + _auto(r)


def _auto(r: Mapping[str, Any]) -> str:
    """` (auto: 2h)` for an `every: auto` source: the interval its cadence gives now;
    ` (pushed)` for a source a WebSub hub pushes (polled only as a safety net)."""
    interval = r.get("poll_interval_seconds")
    auto = f" (auto: {_span(interval)})" if r.get("every_auto") and interval else ""
    return auto + (" (pushed)" if r.get("pushed") else "")


def _span(seconds: float) -> str:
    seconds = max(seconds, 0.0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def print_status_wide(rows: Sequence[dict[str, Any]]) -> None:
    """Every column of the state, as a table (`ingest status --wide`)."""
    table = _table(
        ("source", "last attempt", "last success", "HTTP", "items", "lag p50", "fails",
         "backoff", "next due", "error")
    )  # fmt: skip
    for r in rows:
        key = r["key"] + ("" if r["in_config"] else " (removed)")
        if not r["enabled"]:
            key += " (disabled)"
        error = _status_error(r)
        if r["disabled_reason"]:
            error = f"DISABLED ({r['disabled_reason']})" + (f"; {error}" if error else "")
        table.add_row(
            key,
            _when(r["last_attempt_at"]),
            _when(r["last_success_at"]),
            str(r["last_status"] or ""),
            str(r["items"]),
            _lag(r.get("median_lag_seconds")),
            str(r["consecutive_failures"] or ""),
            _duration(r["backoff_seconds"]),
            _when(r["next_due_at"]) + _auto(r),
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
        "error_kind": trial.error_kind, "untitled": trial.untitled,
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
    if trial.untitled:
        n = trial.untitled
        print(
            f"{n} {'entry has' if n == 1 else 'entries have'} neither a title nor any text "
            "and would be left out (not listed below)"
        )
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
        if i.date_source == "listed":
            date = f"(place {int((LISTED_EPOCH - i.published_at).total_seconds()) + 1})"
        elif i.date_source != "published":
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
