"""The collection page: Jinja2 templates a publisher can override, and what they are given.

`environment(templates)` looks in the publisher's directory first, then in
the templates shipped with ingest (`ingest/web/templates/`: `base.html`,
`index.html`, `story.html`, `style.css`), so overriding one file keeps the
rest.  Autoescaping is on: titles are plain text and are escaped; summaries
are sanitized HTML stored by normalize and are passed as `Markup`, so
templates print them as they are.  `render_page` is pure: stories in, HTML
out; docs/downstream.md lists the variables a template gets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, TemplateError
from markupsafe import Markup

from ingest import __version__
from ingest.config.site import DEFAULT_SECTIONS, PageSection, SiteSpec
from ingest.errors import IngestError

__all__ = [
    "PAGE_SECTIONS",
    "SHIPPED",
    "TemplateProblem",
    "environment",
    "render_page",
    "story_view",
]

SHIPPED = Path(__file__).parent / "templates"
PAGE_SECTIONS = DEFAULT_SECTIONS  # the page's lists when sources.yaml has no site: block


class TemplateProblem(IngestError):
    """A publisher's template directory is missing or one of its templates is broken."""

    kind = "template"


def environment(templates: Path | None = None) -> Environment:
    """The Jinja2 environment: `templates` (if given) in front of the shipped ones."""
    loaders = []
    if templates is not None:
        if not templates.is_dir():
            raise TemplateProblem(f"template directory {templates} does not exist")
        loaders.append(FileSystemLoader(str(templates)))
    loaders.append(FileSystemLoader(str(SHIPPED)))
    env = Environment(
        loader=ChoiceLoader(loaders),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    try:  # a broken template fails at start, not per request
        for name in ("index.html", "base.html", "story.html"):
            env.get_template(name)
    except TemplateError as e:
        raise TemplateProblem(f"cannot load the page template: {_located(e)}") from e
    return env


def _located(e: TemplateError) -> str:
    """The error as `FILE:LINE: message` where Jinja2 knows where it is."""
    filename = getattr(e, "filename", None)
    lineno = getattr(e, "lineno", None)
    if filename and lineno:
        return f"{filename}:{lineno}: {e.message or e}"
    return str(e)


def _render_where(e: Exception) -> str:
    """A render error with the template file and line of the innermost template frame
    (Jinja2 rewrites its tracebacks so that template lines show as frames)."""
    tb = e.__traceback__
    where = None
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        if name.endswith((".html", ".css")):
            where = f"{name}:{tb.tb_lineno}"
        tb = tb.tb_next
    return f"{where}: {e}" if where else str(e)


def _http(url: object) -> str | None:
    """The URL if it is http(s), else None (defence in depth: normalize already checks)."""
    text = str(url or "")
    return text if text.lower().startswith(("https://", "http://")) else None


def _day(moment: datetime) -> str:
    return f"{moment.day} {moment:%b %Y}"


def story_view(row: Mapping[str, Any]) -> dict[str, Any]:
    """A stored story as templates see it: every column, plus ready-to-print fields."""
    published: datetime = row["published_at"]
    view = dict(row)
    view.update(
        url=_http(row.get("url")),
        image_url=_http(row.get("image_url")),
        summary=Markup(row.get("summary") or ""),  # sanitized by normalize: print as is
        content=Markup(row["content"]) if row.get("content") else None,  # likewise
        date_iso=published.isoformat(),
        date_text=_day(published),
    )
    if row.get("date_source") == "listed":  # an editor's undated pick: no date to show
        view.update(date_iso=None, date_text=None)
    return view


def render_page(
    env: Environment,
    sections: Sequence[tuple[PageSection, Sequence[Mapping[str, Any]]]],
    *,
    updated: datetime | None,
    site: SiteSpec | None = None,
) -> bytes:
    """index.html for these sections and their stories (newest first), with the words of
    `site` (sources.yaml's `site:` block) around them."""
    site = site or SiteSpec()
    context = {
        "site_title": site.title,
        "site_intro": site.intro,
        "feedback_text": site.feedback_text,
        "feedback_link": site.feedback_link,
        "feedback_url": _http(site.feedback_url) if site.feedback_url else None,
        "site_footer": site.footer,
        "generator": f"ingest {__version__}",
        "updated": updated,
        "updated_iso": updated.isoformat() if updated else None,
        "updated_text": _day(updated) if updated else None,
        "sections": [
            {
                "key": s.key,
                "heading": s.heading,
                "layout": s.layout,
                "summaries": s.summaries,
                "atom": f"feeds/{s.key}.atom",
                "json": f"feeds/{s.key}.json",
                "stories": [story_view(r) for r in rows],
            }
            for s, rows in sections
        ],
    }
    try:
        html = env.get_template("index.html").render(context)
    except TemplateError as e:
        raise TemplateProblem(f"cannot render the page: {_render_where(e)}") from e
    return html.encode("utf-8")
