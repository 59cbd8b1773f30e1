"""`ingest export --out DIR`: the served page, JSON and feeds as static files.

Layout (docs/downstream.md):

    index.html                  the collection page (= GET /)
    api/items.json              the newest stories of every section (= /api/items?limit=N)
    api/items-<section>.json    the newest of one section (= /api/items?section=S&limit=N)
    feeds/<section>.atom        Atom 1.0 (= /feeds/<section>.atom)
    feeds/<section>.json        JSON Feed 1.1 (= /feeds/<section>.json)

A file is rewritten only when its bytes change (written to a temporary file
beside it and renamed into place, so a reader never sees half a file); an
unchanged file keeps its mtime, so `rsync`, `aws s3 sync` and CDNs see no
change.  Nothing is ever deleted.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ingest import errors
from ingest.config.site import SiteSpec
from ingest.store import Store
from ingest.web.params import MAX_LIMIT, ItemsQuery
from ingest.web.site import Site

__all__ = ["DEFAULT_LIMIT", "ExportReport", "export_site", "site_files"]

DEFAULT_LIMIT = 100  # stories per static API file


@dataclass(frozen=True, slots=True)
class ExportReport:
    out: Path
    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.out}: {len(self.written)} written, {len(self.unchanged)} unchanged "
            f"({len(self.written) + len(self.unchanged)} files)"
        )


def site_files(site: Site, *, limit: int = DEFAULT_LIMIT) -> dict[str, bytes]:
    """Relative path -> content of every exported file."""
    limit = max(1, min(limit, MAX_LIMIT))
    files = {"index.html": site.page().content}
    files["api/items.json"] = site.items(ItemsQuery(limit=limit), paginate=False).content
    for section in site.sections():
        query = ItemsQuery(section=section, limit=limit)
        files[f"api/items-{section}.json"] = site.items(query, paginate=False).content
        rows = site.feed_rows(section)  # read once for both formats
        if rows is not None:
            for kind in ("atom", "json"):
                files[f"feeds/{section}.{kind}"] = site.render_feed(section, kind, rows).content
    return files


def export_site(
    store: Store,
    out: Path,
    *,
    templates: Path | None = None,
    base_url: str | None = None,
    limit: int = DEFAULT_LIMIT,
    spec: SiteSpec | None = None,
) -> ExportReport:
    """Write the site under `out`, rewriting only files whose content changed;
    `spec` is sources.yaml's `site:` block."""
    site = Site(store, templates=templates, base_url=base_url, spec=spec)
    files = site_files(site, limit=limit)
    report = ExportReport(out)
    try:
        for rel, content in files.items():
            path = out / rel
            if _same(path, content):
                report.unchanged.append(rel)
                continue
            _write(path, content)
            report.written.append(rel)
    except OSError as e:
        raise errors.IngestError(f"cannot export to {out}: {e}") from e
    return report


def _same(path: Path, content: bytes) -> bool:
    try:
        if path.stat().st_size != len(content):
            return False
        return path.read_bytes() == content
    except FileNotFoundError:
        return False


def _write(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(content)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; web servers and syncs need to read it
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
