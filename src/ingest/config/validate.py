"""Check a whole sources file: the top level, site:, defaults:, settings: and each source.

This module's one job is `_Checker`: compose the text, walk the top-level keys,
`site:` (with `site._SiteChecker`), `defaults:`, `settings:` and `sources:`
(each source is checked, with each
page's `select:` and each curated source's `items:`, by the `_SourceChecker`
of `source_fields` that `_Checker` builds on), apply the defaults to every
source, and return the sources and settings, or raise one `ConfigError` with
every problem in line order.  It does not read files or build the `Config`
(the package's `load_config` and `parse_config` do), judge single values
(`values`, `notations`), or implement the generic field reading (`fields`).
"""

from __future__ import annotations

import gc
from dataclasses import replace
from typing import Final, TypeAlias, TypeVar

import yaml
from yaml.nodes import MappingNode, Node

from ingest.config.fields import _fail
from ingest.config.notations import _callback, _cron, _network
from ingest.config.request_fields import _host_delays
from ingest.config.rule_fields import _rules
from ingest.config.site import SiteSpec, _SiteChecker
from ingest.config.source_fields import (
    _SOURCE_FIELDS,
    _body_size,
    _Defaults,
    _every,
    _SourceChecker,
)
from ingest.config.values import (
    MAX_MEMORY,
    _count,
    _flag,
    _fraction,
    _interval,
    _param,
    _section,
    _size,
    _timeout,
    _user_agent,
)
from ingest.config.yaml_nodes import (
    _NULL_TAG,
    _kind_of,
    _line,
    _syntax_problem,
    _TextResolver,
)
from ingest.errors import ConfigError
from ingest.model import Rule, Settings, Source

__all__ = ["_Checker"]

_T = TypeVar("_T")
_memory_size: Final = _size(MAX_MEMORY, "1TiB")
_Checked: TypeAlias = tuple[tuple[Source, ...], Settings, SiteSpec]

_TOP_FIELDS: Final = ("site", "defaults", "settings", "sources")
_DEFAULT_FIELDS: Final = (
    "every",
    "cron",
    "min_every",
    "max_every",
    "timeout",
    "max_body",
    "section",
    "enabled",
    "strip_params",
    "allow_networks",
    "rules",
)
_SETTINGS_FIELDS: Final = (
    "concurrency",
    "per_host",
    "per_host_delay",
    "host_delays",
    "host_failures",
    "host_failure_cooldown",
    "max_redirects",
    "user_agent",
    "backoff_max",
    "jitter",
    "retention",
    "history",
    "respect_max_age",
    "max_entries",
    "parse_cpu",
    "parse_memory",
    "websub_callback",
    "push_every",
    "websub_verify_timeout",
)
_SETTINGS_HINTS: Final = {"allow_networks": "; 'allow_networks' belongs under defaults:"}
_DEFAULT_HINTS: Final = {
    f: f"; '{f}' cannot be a default, set it on each source"
    for f in _SOURCE_FIELDS
    if f not in _DEFAULT_FIELDS
}


def _global_rules(node: Node, name: str) -> tuple[Rule, ...]:
    return _rules(node, name, "defaults")


class _Checker(_SourceChecker, _SiteChecker):
    """Checks one sources file, collecting every problem; see the module docstring."""

    # -- the whole file

    def check(self, text: str, loader: type[_TextResolver]) -> _Checked:
        # Composing a big file makes tens of thousands of small objects, which
        # sets off the cyclic collector again and again for nothing; pausing it
        # takes a 2,000-source file from ~85 ms to ~50 ms.  Restored after.
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            return self._check(text, loader)
        finally:
            if was_enabled:
                gc.enable()

    def _check(self, text: str, loader: type[_TextResolver]) -> _Checked:
        try:
            root = yaml.compose(text, Loader=loader)  # type: ignore[arg-type]
        except yaml.YAMLError as e:
            self.add(*_syntax_problem(text, e))
            raise ConfigError(self.problems) from e
        except RecursionError as e:  # the pure-Python parser on absurdly deep nesting
            _fail(self.path, 1, f"YAML syntax error: nested too deeply to read ({e})")
        if root is None:
            _fail(self.path, 1, "the file is empty; it needs a 'sources:' list")
        if not isinstance(root, MappingNode):
            _fail(
                self.path,
                _line(root),
                f"the file must be a mapping with a 'sources:' list, not {_kind_of(root)}",
            )
        top = self.fields(root, _TOP_FIELDS, "unknown top-level key", "")
        defaults = self.defaults(top["defaults"]) if "defaults" in top else _Defaults()
        settings = self.settings(top["settings"]) if "settings" in top else Settings()
        site = self.site(top["site"]) if "site" in top else SiteSpec()
        if defaults.allow_networks:  # process-wide, though written under defaults:
            settings = replace(settings, allow_networks=defaults.allow_networks)
        sources: list[Source] = []
        if "sources" not in top:
            self.add(1, "the file has no 'sources:' list")
        else:
            sources = self.sources(top["sources"], defaults)
        if self.problems:
            # an anchor used by many sources reports the same problem once
            unique = dict.fromkeys(self.problems)
            raise ConfigError(sorted(unique, key=lambda p: p.line))
        return tuple(sources), settings, site

    # -- defaults: and settings:

    def defaults(self, pair: tuple[Node, Node]) -> _Defaults:
        d = _Defaults()
        node = self.mapping(pair, "defaults")
        if node is None:
            return d
        w = "defaults: "
        f = self.fields(node, _DEFAULT_FIELDS, "unknown field", w, _DEFAULT_HINTS)
        f = {n: pair for n, pair in f.items() if pair[1].tag != _NULL_TAG}  # empty: not given
        if "every" in f and "cron" in f:
            self.add(_line(f["cron"][0]), f"{w}use either 'every' or 'cron', not both")
        if "every" in f:
            d.every = self.convert(f["every"], _every, "every", w)
        if "cron" in f:
            d.cron = self.convert(f["cron"], _cron, "cron", w)
        d.min_every = self.optional(f, "min_every", _interval, None, w)
        d.max_every = self.optional(f, "max_every", _interval, None, w)
        if d.min_every is not None and d.max_every is not None and d.min_every > d.max_every:
            self.add(
                _line(f["max_every"][0]),
                f"{w}min_every is longer than max_every; "
                "min_every is the shortest interval, max_every the longest",
            )
            d.min_every = d.max_every = None  # reported once here, not again for every source
        d.timeout = self.optional(f, "timeout", _timeout, d.timeout, w)
        d.max_body = self.optional(f, "max_body", _body_size, d.max_body, w)
        d.section = self.optional(f, "section", _section, d.section, w)
        d.enabled = self.optional(f, "enabled", _flag, d.enabled, w)
        if "strip_params" in f:
            d.strip_params = self.strings(f["strip_params"], "strip_params", w, _param)
        if "allow_networks" in f:
            networks = self.strings(f["allow_networks"], "allow_networks", w, _network)
            d.allow_networks = tuple(dict.fromkeys(networks))
        if "rules" in f:
            d.rules = self.convert(f["rules"], _global_rules, "rules", w) or ()
        return d

    def settings(self, pair: tuple[Node, Node]) -> Settings:
        s = Settings()
        node = self.mapping(pair, "settings")
        if node is None:
            return s
        w = "settings: "
        f = self.fields(node, _SETTINGS_FIELDS, "unknown setting", w, _SETTINGS_HINTS)
        return Settings(
            concurrency=self.optional(f, "concurrency", _count(1, 100_000), s.concurrency, w),
            per_host=self.optional(f, "per_host", _count(1, 100_000), s.per_host, w),
            per_host_delay=self.optional(f, "per_host_delay", _timeout, s.per_host_delay, w),
            host_delays=self.optional(f, "host_delays", _host_delays, s.host_delays, w),
            host_failures=self.optional(f, "host_failures", _count(0, 1000), s.host_failures, w),
            host_failure_cooldown=self.optional(
                f, "host_failure_cooldown", _timeout, s.host_failure_cooldown, w
            ),
            max_redirects=self.optional(f, "max_redirects", _count(0, 20), s.max_redirects, w),
            user_agent=self.optional(f, "user_agent", _user_agent, s.user_agent, w),
            backoff_max=self.optional(f, "backoff_max", _interval, s.backoff_max, w),
            jitter=self.optional(f, "jitter", _fraction, s.jitter, w),
            retention=self.optional(f, "retention", _interval, s.retention, w),
            history=self.optional(f, "history", _interval, s.history, w),
            respect_max_age=self.optional(f, "respect_max_age", _flag, s.respect_max_age, w),
            max_entries=self.optional(f, "max_entries", _count(1, 1_000_000), s.max_entries, w),
            parse_cpu=self.optional(f, "parse_cpu", _timeout, s.parse_cpu, w),
            parse_memory=self.optional(f, "parse_memory", _memory_size, s.parse_memory, w),
            websub_callback=self.optional(f, "websub_callback", _callback, None, w),
            push_every=self.optional(f, "push_every", _interval, s.push_every, w),
            websub_verify_timeout=self.optional(
                f, "websub_verify_timeout", _timeout, s.websub_verify_timeout, w
            ),
        )
