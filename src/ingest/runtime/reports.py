"""A poll's report in words: the report of a failed poll and the poll log's line.

One job: `failure_report` turns the `IngestError` a poll ended with into its
`SourceReport`; `log_report` writes a report as the poll log's line
(`ingest.poll`), for a poll or a WebSub push.  It decides nothing and stores
nothing.
"""

from __future__ import annotations

import logging

from ingest import errors
from ingest.model import Fetched, Source, SourceReport
from ingest.stages.controls import strip_controls

__all__ = ["failure_report", "log_report"]

log = logging.getLogger("ingest.poll")


def failure_report(source: Source, e: errors.IngestError, fetched: Fetched | None) -> SourceReport:
    """The report of a poll that failed with `e` (`fetched`: what came back before it did)."""
    status = getattr(e, "status", None) or (fetched.status if fetched else None)
    return SourceReport(
        source_key=source.key,
        ok=False,
        status=status or None,
        error=strip_controls(str(e)),  # stored: no NUL for PostgreSQL to refuse
        error_kind=e.kind,
        retry_after=getattr(e, "retry_after", None),
        moved_to=fetched.moved_to if fetched else None,
    )


def log_report(r: SourceReport, *, push: bool = False) -> None:
    """The poll log's line for `r` (`ingest.poll`): a poll's, or with `push` what a WebSub
    hub pushed (`KEY push new=...`, `KEY push failed ...`)."""
    extra: dict[str, object] = {
        "source": r.source_key, "status": r.status, "new": r.new, "updated": r.updated,
        "entries": r.entries, "ms": r.elapsed_ms, "error": r.error,
    }  # fmt: skip
    if push:
        extra["push"] = True
    status = "" if r.status is None else f" status={r.status}"  # none: a curated source
    key = f"{r.source_key} push" if push else r.source_key
    if r.ok:
        how = " not-modified" if r.not_modified else (" unchanged" if r.unchanged else "")
        how += "".join(f" ({note})" for note in r.notes)
        log.info(
            "%s%s new=%d updated=%d entries=%d ms=%d%s",
            key, status, r.new, r.updated, r.entries, r.elapsed_ms, how,
            extra=extra,
        )  # fmt: skip
    else:
        log.warning(
            "%s failed%s ms=%d error=%s",
            key, status, r.elapsed_ms, r.error,
            extra=extra,
        )  # fmt: skip
