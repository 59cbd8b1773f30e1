"""The `site:` block of sources.yaml: what the collection page says around its stories.

One job: the page's words and shape as values (`SiteSpec`: title, intro, a
feedback link, footer, and per section its heading, layout and how many
stories) and the checker of the block (`_SiteChecker`, which `validate._Checker`
builds on), reporting each mistake at its line like the rest of the file.
Without a `site:` block, or for what it leaves out, `SiteSpec()` holds the
defaults.  It renders nothing (`ingest.web.page` does) and reads no file.

```yaml
site:
  title: Leadership
  intro: Welcome to our collection of resources on leadership in healthcare.
  feedback:
    text: Have a suggestion for a new resource or want to share some feedback?
    link: Let us know here
    url: https://example.org/contact
  footer: The development of this page is supported by ...
  sections:                 # in page order; sections not named follow them
    highlighted: {heading: Highlighted resources, layout: cards, limit: 3}
    videos: {heading: Highlighted Leadership Videos}
```
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from yaml.nodes import MappingNode, Node

from ingest.config.fields import _FieldChecker
from ingest.config.values import _Bad, _count, _flag, _long_text, _section, _text, _url
from ingest.config.yaml_nodes import _is_null, _kind_of, _line

__all__ = ["DEFAULT_SECTIONS", "LAYOUTS", "PageSection", "SiteSpec", "_SiteChecker"]

LAYOUTS: Final = ("cards", "rows", "list")  # image on top / image beside / titles only


@dataclass(frozen=True, slots=True)
class PageSection:
    """One list of the page: its section key, heading, layout and size."""

    key: str
    heading: str
    limit: int
    layout: str  # one of LAYOUTS
    summaries: bool


# The four lists of the collection page, in page order (DESIGN.md's seed page).
DEFAULT_SECTIONS: Final = (
    PageSection("highlighted", "Highlighted resources", 3, "cards", True),
    PageSection("videos", "Videos", 3, "cards", True),
    PageSection("blogs", "Blog posts", 4, "rows", True),
    PageSection("latest", "Latest news and research", 15, "list", False),
)
EXTRA_SECTION: Final = PageSection("", "", 6, "rows", True)  # any other section a source feeds
DEFAULT_INTRO: Final = (
    "The latest from the journals, blogs and talks our editors follow, newest first."
)


@dataclass(frozen=True, slots=True)
class SiteSpec:
    """The page around the stories; every field has a default."""

    title: str = "News and resources"
    intro: str = DEFAULT_INTRO
    feedback_text: str = ""  # words before the link
    feedback_link: str = ""  # the link's own words
    feedback_url: str | None = None
    footer: str = ""
    sections: tuple[PageSection, ...] = field(default=DEFAULT_SECTIONS)

    def section(self, key: str) -> PageSection:
        """The section's spec: as configured, else the default, else the extra one."""
        for s in self.sections:
            if s.key == key:
                return s
        heading = key.replace("-", " ").capitalize()
        return PageSection(
            key, heading, EXTRA_SECTION.limit, EXTRA_SECTION.layout, EXTRA_SECTION.summaries
        )

    def heading(self, key: str) -> str:
        return self.section(key).heading


_SITE_FIELDS: Final = ("title", "intro", "feedback", "footer", "sections")
_FEEDBACK_FIELDS: Final = ("text", "link", "url")
_SECTION_FIELDS: Final = ("heading", "layout", "limit", "summaries")


def _layout(node: Node, name: str) -> str:
    value = _text(node, name)
    if value not in LAYOUTS:
        raise _Bad(f"{name} must be one of {', '.join(LAYOUTS)}, not {value!r}", node)
    return value


def _words(node: Node, name: str) -> str:
    """Text for the page: lines joined, a blank line kept as a paragraph break."""
    text = _long_text(node, name)
    paragraphs = [" ".join(p.split()) for p in text.split("\n\n")]
    return "\n\n".join(p for p in paragraphs if p)


class _SiteChecker(_FieldChecker):
    """Checks the `site:` block (see the module docstring)."""

    def site(self, pair: tuple[Node, Node]) -> SiteSpec:
        d = SiteSpec()
        node = self.mapping(pair, "site")
        if node is None:
            return d
        w = "site: "
        f = self.fields(node, _SITE_FIELDS, "unknown field", w)
        feedback: tuple[str, str, str | None] = ("", "", None)
        if "feedback" in f:
            feedback = self._feedback(f["feedback"])
        sections = d.sections
        if "sections" in f:
            sections = self._sections(f["sections"])
        return SiteSpec(
            title=self.optional(f, "title", _words, d.title, w),
            intro=self.optional(f, "intro", _words, d.intro, w),
            feedback_text=feedback[0],
            feedback_link=feedback[1],
            feedback_url=feedback[2],
            footer=self.optional(f, "footer", _words, d.footer, w),
            sections=sections,
        )

    def _feedback(self, pair: tuple[Node, Node]) -> tuple[str, str, str | None]:
        node = self.mapping(pair, "feedback")
        if node is None:
            return "", "", None
        w = "site: feedback: "
        f = self.fields(node, _FEEDBACK_FIELDS, "unknown field", w)
        if "url" not in f or _is_null(f["url"][1]):
            self.add(_line(pair[0]), f"{w}'url' is required (where the link goes)")
        url = self.optional(f, "url", _url, None, w)
        link = self.optional(f, "link", _words, "Let us know", w)
        return self.optional(f, "text", _words, "", w), link, url

    def _sections(self, pair: tuple[Node, Node]) -> tuple[PageSection, ...]:
        node = pair[1]
        if not isinstance(node, MappingNode) or not node.value:
            what = "empty" if _is_null(node) else _kind_of(node)
            self.add(
                _line(node),
                f"site: 'sections' must name sections, each with its heading (e.g. "
                f"'videos: {{heading: Videos}}'), not {what}",
            )
            return DEFAULT_SECTIONS
        out: list[PageSection] = []
        seen: set[str] = set()
        for key_node, value_node in node.value:
            try:
                key = _section(key_node, "section")
            except _Bad as e:
                self.bad(e, key_node, "site: sections: ")
                continue
            if key in seen:
                self.add(_line(key_node), f"site: sections: {key!r} is listed twice")
                continue
            seen.add(key)
            out.append(self._section(key, key_node, value_node))
        return tuple(out)

    def _section(self, key: str, key_node: Node, node: Node) -> PageSection:
        base = SiteSpec().section(key)
        w = f"site: sections: {key}: "
        if _is_null(node):
            return base
        if not isinstance(node, MappingNode):
            self.add(
                _line(node),
                f"{w}must be a block with heading, layout, limit (not {_kind_of(node)})",
            )
            return base
        f = self.fields(node, _SECTION_FIELDS, "unknown field", w)
        layout = self.optional(f, "layout", _layout, base.layout, w)
        return PageSection(
            key=key,
            heading=self.optional(f, "heading", _words, base.heading, w),
            limit=self.optional(f, "limit", _count(1, 100), base.limit, w),
            layout=layout,
            # a list of titles shows no summaries unless asked to
            summaries=self.optional(f, "summaries", _flag, layout != "list", w),
        )
