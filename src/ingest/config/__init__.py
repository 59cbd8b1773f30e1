"""Read sources.yaml into validated `Source` values; every mistake names file:line.

This package's one job is to turn the editors' file (see DESIGN.md, "sources.yaml")
into a frozen `Config`: the sources in file order with `defaults:` applied,
the `settings:` block as `Settings`, and the `site:` block (the page's title,
intro, footer and section headings) as `site.SiteSpec`.  It does no network and no database work,
and it does not schedule anything: it only reads and checks text.

How it reads the file: `yaml.compose` (libyaml's C parser when available) gives
a node tree in which every key and value carries its line; the tree is walked
field by field.  The resolver only tells nulls and `<<` merge keys from
text, and values are converted by the type the *field* expects,
from the text the editor typed, not by YAML's guesses, so `name: no` is the
name "no" and `every: 1:30` is a bad interval rather than the number 90.
Alias/anchor reuse and `<<:` merge keys work as in YAML.

Every problem in the file is collected (unknown or misspelled fields, duplicate
keys, wrong types, bad intervals, cron strings, URLs, selectors, ...) and
raised together as one `ConfigError` whose `problems` read
`sources.yaml:LINE: message`.  Line 0 means the file as a whole (it could not
be read).  apscheduler (for cron) and soupsieve (for CSS selectors) are
imported only when a file uses a cron schedule or a page source.

This module is the public API: `Config`, `load_config`, `parse_config`, and
`parse_duration`, `parse_size` and `MAX_DURATION` from `values`.  The work is done by
`yaml_nodes` (YAML text to nodes with lines; syntax errors), `values` (one
value: durations, sizes, URLs, kinds, ...), `notations` (one value in another
tool's notation: cron strings, CSS selectors, date formats, networks),
`fields` (a mapping's fields, merge keys, recording problems),
`source_fields` (each source of `sources:`), `site` (the `site:` block) and
`validate` (the whole file: top level, `defaults:`, `settings:`).
Names shared between those modules keep their leading underscore: they are
private to this package.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from ingest.config.fields import _fail
from ingest.config.site import SiteSpec
from ingest.config.validate import _Checker
from ingest.config.values import MAX_DURATION, parse_duration, parse_size
from ingest.config.yaml_nodes import _Loader
from ingest.model import Settings, Source

__all__ = [
    "MAX_DURATION",
    "Config",
    "load_config",
    "parse_config",
    "parse_duration",
    "parse_size",
]

# `parse_config` reads `_Loader` from here at each call, so the tests can swap in
# `yaml_nodes._PyLoader` (PyYAML's pure-Python parser) for libyaml's `_CLoader`


@dataclass(frozen=True, slots=True)
class Config:
    """A validated sources file: every source in file order, and the settings."""

    path: str  # as given, used in messages
    sources: tuple[Source, ...]  # every source in file order, enabled or not
    settings: Settings = field(default_factory=Settings)
    site: SiteSpec = field(default_factory=SiteSpec)  # the page around the stories
    _by_key: Mapping[str, Source] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_key", MappingProxyType({s.key: s for s in self.sources}))

    def enabled(self) -> tuple[Source, ...]:
        """The sources to poll, in file order."""
        return tuple(s for s in self.sources if s.enabled)

    def get(self, key: str) -> Source | None:
        """The source with this key (enabled or not), or None."""
        return self._by_key.get(key)

    @property
    def by_key(self) -> Mapping[str, Source]:
        """Every source by key (read-only)."""
        return self._by_key


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate a sources file; raise `ConfigError` listing every problem."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        _fail(name, 0, "file not found")
    except IsADirectoryError:
        _fail(name, 0, "is a directory, not a sources file")
    except OSError as e:
        _fail(name, 0, f"cannot read the file: {e.strerror or e}")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        _fail(name, line, "the file is not UTF-8 text; save it as UTF-8")
    return parse_config(text, name)


def parse_config(text: str, path: str = "sources.yaml") -> Config:
    """Validate the text of a sources file; raise `ConfigError` listing every problem."""
    sources, settings, site = _Checker(path).check(text, _Loader)
    return Config(path, sources, settings, site)
