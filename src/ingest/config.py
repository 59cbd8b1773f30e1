"""Read sources.yaml into validated `Source` values; every mistake names file:line.

This module's one job is to turn the editors' file (see DESIGN.md, "sources.yaml")
into a frozen `Config`: the sources in file order with `defaults:` applied, and
the `settings:` block as `Settings`.  It does no network and no database work,
and it does not schedule anything: it only reads and checks text.

How it reads the file: `yaml.compose` (libyaml's C parser when available) gives
a node tree in which every key and value carries its line; the tree is walked
here, field by field.  The resolver only tells nulls and `<<` merge keys from
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
"""

from __future__ import annotations

import difflib
import gc
import math
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC
from fractions import Fraction
from functools import lru_cache
from types import MappingProxyType
from typing import Final, Literal, NoReturn, TypeVar
from urllib.parse import urlsplit

import yaml
from yaml.composer import Composer
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.scanner import Scanner

from ingest.errors import ConfigError, ConfigProblem
from ingest.model import DEFAULT_MAX_BODY, DEFAULT_TIMEOUT, Settings, Source

__all__ = ["Config", "load_config", "parse_config", "parse_duration", "parse_size"]

_T = TypeVar("_T")

_NULL_TAG: Final = "tag:yaml.org,2002:null"
_STR_TAG: Final = "tag:yaml.org,2002:str"
_MERGE_TAG: Final = "tag:yaml.org,2002:merge"
_SEQ_TAG: Final = "tag:yaml.org,2002:seq"
_MAP_TAG: Final = "tag:yaml.org,2002:map"
_NULLS: Final = frozenset(("", "~", "null", "Null", "NULL"))

_TOP_FIELDS: Final = ("defaults", "settings", "sources")
_SOURCE_FIELDS: Final = (
    "key",
    "name",
    "url",
    "kind",
    "section",
    "every",
    "cron",
    "enabled",
    "include",
    "exclude",
    "strip_params",
    "select",
    "timeout",
    "max_body",
)
_DEFAULT_FIELDS: Final = (
    "every",
    "cron",
    "timeout",
    "max_body",
    "section",
    "enabled",
    "strip_params",
)
_SETTINGS_FIELDS: Final = ("concurrency", "per_host", "max_redirects", "user_agent")
_SELECT_FIELDS: Final = ("item", "title", "link", "date", "summary", "image")
_SELECT_REQUIRED: Final = ("item", "title", "link")
_SOURCE_HINTS: Final = {f: f"; '{f}' belongs under select:" for f in _SELECT_FIELDS}
_DEFAULT_HINTS: Final = {
    f: f"; '{f}' cannot be a default, set it on each source"
    for f in _SOURCE_FIELDS
    if f not in _DEFAULT_FIELDS
}
_DEFAULT_EVERY: Final = Source(key="", name="", url="").every
_KINDS: Final = ("feed", "page")

_KEY_RE: Final = re.compile(r"[a-z0-9][a-z0-9-]*")
_SECTION_RE: Final = re.compile(r"[a-z0-9-]+")
_ATTR_RE: Final = re.compile(r"[A-Za-z_:][-\w:.]*")
_PARAM_RE: Final = re.compile(r"[^\s&=#?]+")
_LABEL: Final = r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"
_PLAIN_URL_RE: Final = re.compile(
    rf"https?://{_LABEL}(?:\.{_LABEL})*\.?(?::(\d{{1,5}}))?(?:[/?#][^\s]*)?", re.IGNORECASE
)
_SYNTAX_HINTS: Final = (
    (
        "scanning an alias",
        '; a value that starts with * must be in quotes, e.g. cron: "*/15 * * * *"',
    ),
    ("tab character", "; indent with spaces, not tabs"),
    ("'\\t'", "; indent with spaces, not tabs"),
    ("mapping values are not allowed", "; if a value contains ': ', put the value in quotes"),
    (
        "could not find expected ':'",
        "; each line needs 'field: value', lined up with the lines above",
    ),
    ("expected <block end>", "; check that this line lines up with the lines above it"),
    ("did not find expected", "; check that this line lines up with the lines above it"),
)
_BOOLS: Final = {
    "true": True,
    "yes": True,
    "on": True,
    "false": False,
    "no": False,
    "off": False,
}

_SECOND: Final = 1
_MINUTE: Final = 60
_HOUR: Final = 3600
_DAY: Final = 86400
_DURATION_UNITS: Final = {
    "s": _SECOND,
    "sec": _SECOND,
    "secs": _SECOND,
    "second": _SECOND,
    "seconds": _SECOND,
    "m": _MINUTE,
    "min": _MINUTE,
    "mins": _MINUTE,
    "minute": _MINUTE,
    "minutes": _MINUTE,
    "h": _HOUR,
    "hr": _HOUR,
    "hrs": _HOUR,
    "hour": _HOUR,
    "hours": _HOUR,
    "d": _DAY,
    "day": _DAY,
    "days": _DAY,
}
_NUMBER: Final = r"(?:\d+(?:\.\d*)?|\.\d+)"
_PLAIN_NUMBER_RE: Final = re.compile(_NUMBER)
_DURATION_PART_RE: Final = re.compile(rf"({_NUMBER})\s*([a-z]+)\s*")
_SIZE_RE: Final = re.compile(rf"({_NUMBER})\s*([a-z]*)")
_SIZE_UNITS: Final = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
}


# --------------------------------------------------------------------------
# public API


@dataclass(frozen=True, slots=True)
class Config:
    """A validated sources file: every source in file order, and the settings."""

    path: str  # as given, used in messages
    sources: tuple[Source, ...]  # every source in file order, enabled or not
    settings: Settings = field(default_factory=Settings)
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
    return _Checker(path).check(text)


def parse_duration(value: str | int | float) -> float:
    """Seconds in a duration: "30s", "30m", "1h", "2d", "1h30m", "90" (seconds), 90.

    Units may also be spelled out ("30 minutes").  Raises ValueError on
    anything else, including negative numbers.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"not a duration: {value!r}")
    if not isinstance(value, str):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"not a duration: {value!r}")
        return float(value)
    return _duration(value.strip().lower())


@lru_cache(maxsize=256)
def _duration(text: str) -> float:
    if _PLAIN_NUMBER_RE.fullmatch(text):
        return float(text)
    total = 0.0
    pos = 0
    for m in _DURATION_PART_RE.finditer(text):
        unit = _DURATION_UNITS.get(m.group(2))
        if m.start() != pos or unit is None:
            break
        total += float(m.group(1)) * unit
        pos = m.end()
    if pos == 0 or pos != len(text):
        raise ValueError(f"not a duration: {text!r} (use a number with s, m, h or d, e.g. 30m)")
    return total


def parse_size(value: str | int) -> int:
    """Bytes in a size: "10MiB", "512KiB", "10MB" (10**7), "1048576", 1048576.

    Units: B, KB, MB, GB (powers of 1000), KiB, MiB, GiB (powers of 1024),
    any case.  Raises ValueError on anything else, including negative numbers.
    """
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"not a size: {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"not a size: {value!r}")
        return value
    m = _SIZE_RE.fullmatch(value.strip().lower())
    unit = _SIZE_UNITS.get(m.group(2)) if m else None
    if m is None or unit is None or (unit == 1 and "." in m.group(1)):
        raise ValueError(
            f"not a size: {value!r} (use a whole number of bytes or B, KB, MB, GB, KiB, MiB, GiB)"
        )
    return round(Fraction(m.group(1)) * unit)


# --------------------------------------------------------------------------
# reading YAML


class _TextResolver:
    """Tags a scalar null, merge (`<<`) or str, never int/bool/float/timestamp.

    The checker converts each value by the type its field expects, from the
    text as typed, so YAML's own typing is not needed; the SafeLoader's
    resolver would spend a third of the compose time on regexes for it.
    """

    def descend_resolver(self, current_node: object, current_index: object) -> None:
        return None

    def ascend_resolver(self) -> None:
        return None

    def resolve(self, kind: type[Node], value: object, implicit: tuple[bool, bool]) -> str:
        if kind is ScalarNode:
            if implicit[0] and value in _NULLS:
                return _NULL_TAG
            if implicit[0] and value == "<<":
                return _MERGE_TAG
            return _STR_TAG
        return _SEQ_TAG if kind is SequenceNode else _MAP_TAG


class _PyLoader(Reader, Scanner, Parser, Composer, _TextResolver):
    """PyYAML's pure-Python reader, scanner, parser and composer: the fallback."""

    def __init__(self, stream: str) -> None:
        Reader.__init__(self, stream)
        Scanner.__init__(self)
        Parser.__init__(self)
        Composer.__init__(self)


_Loader: type[_TextResolver] = _PyLoader
try:
    from yaml._yaml import CParser
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    pass
else:

    class _CLoader(CParser, _TextResolver):
        """libyaml's parser and composer (the CSafeLoader's), with the text resolver."""

    _Loader = _CLoader


# --------------------------------------------------------------------------
# the checker


class _Bad(Exception):
    """One problem with one value, raised by a converter and recorded by the checker."""

    def __init__(self, message: str, node: Node | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.node = node


def _fail(path: str, line: int, message: str) -> NoReturn:
    raise ConfigError([ConfigProblem(path, line, message)])


def _line(node: Node) -> int:
    return int(node.start_mark.line) + 1


def _is_null(node: Node) -> bool:
    return bool(node.tag == _NULL_TAG)


def _kind_of(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "a mapping (key: value lines)"
    if isinstance(node, SequenceNode):
        return "a list"
    if _is_null(node):
        return "empty"
    return repr(node.value)


def _did_you_mean(word: str, choices: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if close:
        return f"; did you mean '{close[0]}'?"
    return f"; expected one of: {', '.join(choices)}"


def _label(f: Mapping[str, tuple[Node, Node]]) -> str:
    """How to name a source in a message about a missing field: its key, else its name."""
    for name, template in (("key", "source {!r}"), ("name", "the source named {!r}")):
        node = f[name][1] if name in f else None
        if isinstance(node, ScalarNode) and node.tag != _NULL_TAG and node.value.strip():
            return template.format(node.value.strip())
    return "this source"


@dataclass(slots=True)
class _Defaults:
    every: float | None = None
    cron: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    max_body: int = DEFAULT_MAX_BODY
    section: str = "latest"
    enabled: bool = True
    strip_params: tuple[str, ...] = ()


class _Checker:
    def __init__(self, path: str) -> None:
        self.path = path
        self.problems: list[ConfigProblem] = []

    def add(self, line: int, message: str) -> None:
        self.problems.append(ConfigProblem(self.path, line, message))

    def bad(self, e: _Bad, fallback: Node, where: str = "") -> None:
        node = e.node if e.node is not None else fallback
        self.add(_line(node), f"{where}{e.message}")

    # -- the whole file

    def check(self, text: str) -> Config:
        # Composing a big file makes tens of thousands of small objects, which
        # sets off the cyclic collector again and again for nothing; pausing it
        # takes a 2,000-source file from ~85 ms to ~50 ms.  Restored after.
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            return self._check(text)
        finally:
            if was_enabled:
                gc.enable()

    def _check(self, text: str) -> Config:
        try:
            root = yaml.compose(text, Loader=_Loader)  # type: ignore[arg-type]
        except yaml.YAMLError as e:
            self._syntax_error(text, e)
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
        sources: list[Source] = []
        if "sources" not in top:
            self.add(1, "the file has no 'sources:' list")
        else:
            sources = self.sources(top["sources"], defaults)
        if self.problems:
            # an anchor used by many sources reports the same problem once
            unique = dict.fromkeys(self.problems)
            raise ConfigError(sorted(unique, key=lambda p: p.line))
        return Config(self.path, tuple(sources), settings)

    def _syntax_error(self, text: str, e: yaml.YAMLError) -> None:
        mark = getattr(e, "problem_mark", None)
        if getattr(e, "context", None) == "while scanning a simple key":
            mark = getattr(e, "context_mark", None) or mark  # the line missing its ':'
        if mark is not None:
            line = int(mark.line) + 1
        elif isinstance(e, yaml.reader.ReaderError):
            index = text.find(chr(e.character)) if isinstance(e.character, int) else -1
            line = text.count("\n", 0, index) + 1 if index >= 0 else 1
        else:
            line = 1
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        context = getattr(e, "context", None)
        message = f"YAML syntax error: {problem}"
        if context:
            message += f" ({context})"
        for clue, hint in _SYNTAX_HINTS:
            if clue in message:
                message += hint
                break
        self.add(line, message)

    def fields(
        self,
        node: MappingNode,
        allowed: tuple[str, ...],
        unknown: str,
        where: str,
        hints: Mapping[str, str] | None = None,
    ) -> dict[str, tuple[Node, Node]]:
        """The mapping's known fields as name -> (key node, value node).

        Reports unknown names (with a suggestion), duplicate names (YAML keeps
        the last silently; here the first is used and the repeat reported)
        and keys that are not plain words.  `<<:` merges are expanded: the
        mapping's own keys win, then earlier merged mappings over later ones.
        """
        out: dict[str, tuple[Node, Node]] = {}
        merges = self._take(node.value, out, allowed, unknown, where, hints)
        if merges:
            explicit = {k.value for k, _ in node.value if isinstance(k, ScalarNode)}
            merged: dict[object, tuple[Node, Node]] = {}
            for key_node, value_node in self._merged(merges, set()):
                name = key_node.value if isinstance(key_node, ScalarNode) else id(key_node)
                if name not in explicit and name not in merged:
                    merged[name] = (key_node, value_node)
            self._take(list(merged.values()), out, allowed, unknown, where, hints)
        return out

    def _take(
        self,
        pairs: list[tuple[Node, Node]],
        out: dict[str, tuple[Node, Node]],
        allowed: tuple[str, ...],
        unknown: str,
        where: str,
        hints: Mapping[str, str] | None,
    ) -> list[Node]:
        """Sort the pairs into `out` or problems; return the values of `<<` keys."""
        merges: list[Node] = []
        for key_node, value_node in pairs:
            name = key_node.value
            if name in allowed and name not in out and key_node.tag == _STR_TAG:
                out[name] = (key_node, value_node)  # the common case, checked first
            elif key_node.tag == _MERGE_TAG:
                merges.append(value_node)
            elif not isinstance(key_node, ScalarNode) or key_node.tag == _NULL_TAG:
                self.add(_line(key_node), f"{where}field names must be plain words")
            elif name in out:
                first = _line(out[name][0])
                self.add(
                    _line(key_node),
                    f"{where}'{name}' appears twice (lines {first} and {_line(key_node)}); "
                    "YAML would silently keep only the last one, remove one of them",
                )
            elif name not in allowed:
                hint = hints.get(name) if hints else None
                self.add(
                    _line(key_node),
                    f"{where}{unknown} '{name}'" + (hint or _did_you_mean(name, allowed)),
                )
            else:
                out[name] = (key_node, value_node)  # a key YAML typed otherwise, e.g. `on:`
        return merges

    def _merged(self, merges: list[Node], active: set[int]) -> Iterator[tuple[Node, Node]]:
        """The pairs that `<<:` values bring in, earlier merges winning, nested ones expanded."""
        for value_node in merges:
            parts = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
            for part in parts:
                if not isinstance(part, MappingNode):
                    self.add(_line(part), "'<<' must merge a mapping (an &anchor of key: values)")
                    continue
                if id(part) in active:
                    self.add(_line(part), "'<<' merges a mapping into itself")
                    continue
                active.add(id(part))
                nested: list[Node] = []
                for key_node, inner in part.value:
                    if key_node.tag == _MERGE_TAG:
                        nested.append(inner)
                    else:
                        yield key_node, inner
                yield from self._merged(nested, active)
                active.discard(id(part))

    def mapping(self, pair: tuple[Node, Node], where: str) -> MappingNode | None:
        value_node = pair[1]
        if isinstance(value_node, MappingNode):
            return value_node
        if _is_null(value_node):
            return None
        self.add(
            _line(value_node),
            f"'{where}' must be a block of key: value lines, not {_kind_of(value_node)}",
        )
        return None

    def convert(
        self,
        pair: tuple[Node, Node],
        convert: Callable[[Node, str], _T],
        name: str,
        where: str = "",
    ) -> _T | None:
        """Run one converter; a problem is recorded and gives None."""
        try:
            return convert(pair[1], name)
        except _Bad as e:
            self.bad(e, pair[1], where)
            return None

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
            d.every = self.convert(f["every"], _interval, "every", w)
        if "cron" in f:
            d.cron = self.convert(f["cron"], _cron, "cron", w)
        if "timeout" in f:
            d.timeout = self.convert(f["timeout"], _interval, "timeout", w) or d.timeout
        if "max_body" in f:
            d.max_body = self.convert(f["max_body"], _size, "max_body", w) or d.max_body
        if "section" in f:
            d.section = self.convert(f["section"], _section, "section", w) or d.section
        if "enabled" in f:
            enabled = self.convert(f["enabled"], _flag, "enabled", w)
            d.enabled = d.enabled if enabled is None else enabled
        if "strip_params" in f:
            d.strip_params = self.strings(f["strip_params"], "strip_params", w, _param)
        return d

    def settings(self, pair: tuple[Node, Node]) -> Settings:
        s = Settings()
        node = self.mapping(pair, "settings")
        if node is None:
            return s
        w = "settings: "
        f = self.fields(node, _SETTINGS_FIELDS, "unknown setting", w)
        return Settings(
            concurrency=self._setting(f, "concurrency", _count(1, 100_000), s.concurrency),
            per_host=self._setting(f, "per_host", _count(1, 100_000), s.per_host),
            max_redirects=self._setting(f, "max_redirects", _count(0, 20), s.max_redirects),
            user_agent=self._setting(f, "user_agent", _text, s.user_agent),
        )

    def _setting(
        self,
        f: Mapping[str, tuple[Node, Node]],
        name: str,
        convert: Callable[[Node, str], _T],
        default: _T,
    ) -> _T:
        if name not in f or _is_null(f[name][1]):
            return default
        value = self.convert(f[name], convert, name, "settings: ")
        return default if value is None else value

    # -- sources:

    def sources(self, pair: tuple[Node, Node], defaults: _Defaults) -> list[Source]:
        node = pair[1]
        if _is_null(node) or (isinstance(node, SequenceNode) and not node.value):
            self.add(_line(pair[0]), "'sources' lists no sources; add at least one")
            return []
        if not isinstance(node, SequenceNode):
            self.add(
                _line(node),
                f"'sources' must be a list of sources (each starting with '- key:'), "
                f"not {_kind_of(node)}",
            )
            return []
        out: list[Source] = []
        seen: dict[str, int] = {}
        for item in node.value:
            source = self.source(item, defaults, seen)
            if source is not None:
                out.append(source)
        return out

    def source(self, node: Node, d: _Defaults, seen: dict[str, int]) -> Source | None:
        if not isinstance(node, MappingNode):
            what = "empty" if _is_null(node) else _kind_of(node)
            self.add(_line(node), f"each source must be a block of key: value lines, not {what}")
            return None
        before = len(self.problems)
        f = self.fields(node, _SOURCE_FIELDS, "unknown field", "", _SOURCE_HINTS)
        # an optional field left empty (`every:`) counts as not given
        given = {n: pair for n, pair in f.items() if pair[1].tag != _NULL_TAG}

        key = self._required(f, "key", _key, node)
        name = self._required(f, "name", _text, node)
        url = self._required(f, "url", _url, node)
        if key is not None:
            line = _line(f["key"][1])
            if key in seen:
                self.add(
                    line,
                    f"key '{key}' is used twice (lines {seen[key]} and {line}); "
                    "each source needs its own key",
                )
            else:
                seen[key] = line

        kind: Literal["feed", "page"] | None = "feed"
        if "kind" in given:
            kind = self.convert(given["kind"], _kind, "kind")  # None: reported; skip select checks

        section = d.section
        if "section" in given:
            section = self.convert(given["section"], _section, "section") or section

        every, cron = d.every, d.cron
        if "every" in given and "cron" in given:
            self.add(
                _line(given["cron"][0]),
                "use either 'every' or 'cron', not both "
                f"('every' is on line {_line(given['every'][0])})",
            )
        if "every" in given:  # the source's own schedule replaces the default one
            every, cron = self.convert(given["every"], _interval, "every"), None
        elif "cron" in given:
            cron = self.convert(given["cron"], _cron, "cron")

        enabled = d.enabled
        if "enabled" in given:
            flag = self.convert(given["enabled"], _flag, "enabled")
            enabled = enabled if flag is None else flag
        include = self.strings(given["include"], "include") if "include" in given else ()
        exclude = self.strings(given["exclude"], "exclude") if "exclude" in given else ()
        strip = d.strip_params
        if "strip_params" in given:
            own = self.strings(given["strip_params"], "strip_params", "", _param)
            strip = tuple(dict.fromkeys(strip + own)) if strip else own
        timeout = d.timeout
        if "timeout" in given:
            timeout = self.convert(given["timeout"], _interval, "timeout") or timeout
        max_body = d.max_body
        if "max_body" in given:
            max_body = self.convert(given["max_body"], _size, "max_body") or max_body

        select: tuple[tuple[str, str], ...] = ()
        if kind is None:
            pass
        elif "select" in given:
            if kind == "page":
                select = self.select(given["select"])
            else:
                self.add(
                    _line(given["select"][0]),
                    "'select' is only for pages; add 'kind: page' or remove the select block",
                )
        elif kind == "page":
            self.add(
                _line(f["kind"][0]),
                "kind: page needs a 'select:' block with at least item, title and link",
            )

        if len(self.problems) > before or key is None or name is None or url is None:
            return None
        if kind is None:  # pragma: no cover - a bad kind is always a reported problem
            return None
        return Source(
            key=key,
            name=name,
            url=url,
            kind=kind,
            section=section,
            every=_DEFAULT_EVERY if every is None else every,
            cron=cron,
            enabled=enabled,
            include=include,
            exclude=exclude,
            strip_params=strip,
            select=select,
            timeout=timeout,
            max_body=max_body,
            line=_line(node),
        )

    def _required(
        self,
        f: Mapping[str, tuple[Node, Node]],
        name: str,
        convert: Callable[[Node, str], str],
        node: MappingNode,
    ) -> str | None:
        if name not in f:
            self.add(_line(node), f"{_label(f)} has no '{name}' (required)")
            return None
        if _is_null(f[name][1]):
            self.add(_line(f[name][0]), f"'{name}' is empty (required)")
            return None
        return self.convert(f[name], convert, name)

    def strings(
        self,
        pair: tuple[Node, Node],
        name: str,
        where: str = "",
        check: Callable[[str, Node, str], None] | None = None,
    ) -> tuple[str, ...]:
        """A list of words; a single word counts as a one-element list; empty is ()."""
        node = pair[1]
        if _is_null(node):
            return ()
        if isinstance(node, MappingNode):
            self.add(
                _line(node), f"{where}'{name}' must be a word or a list of words, not a mapping"
            )
            return ()
        items = node.value if isinstance(node, SequenceNode) else [node]
        out: list[str] = []
        what = f"each entry of '{name}'"
        for item in items:
            try:
                value = _text(item, what)
                if check is not None:
                    check(value, item, name)
                out.append(value)
            except _Bad as e:
                self.bad(e, item, where)
        return tuple(out)

    def select(self, pair: tuple[Node, Node]) -> tuple[tuple[str, str], ...]:
        node = self.mapping(pair, "select")
        if node is None:
            return ()
        w = "select: "
        f = self.fields(node, _SELECT_FIELDS, "unknown field", w)
        missing = [name for name in _SELECT_REQUIRED if name not in f]
        if missing:
            self.add(
                _line(pair[0]),
                f"select is missing {', '.join(repr(m) for m in missing)} "
                "(item, title and link are required)",
            )
        out: list[tuple[str, str]] = []
        for name, field_pair in f.items():
            value = self.convert(field_pair, _selector, name)
            if value is not None:
                out.append((name, value))
        return tuple(out)


# --------------------------------------------------------------------------
# converters: (value node, field name) -> value, or raise _Bad


def _text(node: Node, name: str) -> str:
    if not isinstance(node, ScalarNode):
        raise _Bad(f"{name} must be a single value, not {_kind_of(node)}", node)
    value = str(node.value).strip()
    if not value or node.tag == _NULL_TAG:
        raise _Bad(f"{name} is empty", node)
    return value


def _key(node: Node, name: str) -> str:
    value = _text(node, name)
    if not _KEY_RE.fullmatch(value):
        raise _Bad(
            f"key {value!r} may only use lower-case letters, digits and '-' "
            "and must start with a letter or digit (e.g. bmj-leader)",
            node,
        )
    return value


def _section(node: Node, name: str) -> str:
    value = _text(node, name)
    if not _SECTION_RE.fullmatch(value):
        raise _Bad(
            f"section {value!r} may only use lower-case letters, digits and '-' (e.g. latest)",
            node,
        )
    return value


def _url(node: Node, name: str) -> str:
    value = _text(node, name)
    m = _PLAIN_URL_RE.fullmatch(value)
    if m is not None and int(m.group(1) or 0) <= 65535:
        return value  # the common shape, without urlsplit's cost
    try:
        parts = urlsplit(value)
        ok = (
            parts.scheme in ("http", "https")
            and bool(parts.hostname)
            and not any(c.isspace() for c in value)
        )
        _ = parts.port  # raises ValueError on a bad port
    except ValueError:
        ok = False
    if not ok:
        raise _Bad(f"url {value!r} is not a web address (http:// or https:// and a host)", node)
    return value


def _kind(node: Node, name: str) -> Literal["feed", "page"]:
    value = _text(node, name)
    if value == "feed":
        return "feed"
    if value == "page":
        return "page"
    raise _Bad(f"kind must be 'feed' or 'page', not {value!r}" + _did_you_mean(value, _KINDS), node)


def _flag(node: Node, name: str) -> bool:
    value = node.value.strip().lower() if isinstance(node, ScalarNode) else None
    if value is None or value not in _BOOLS:
        raise _Bad(f"{name} must be true or false, not {_kind_of(node)}", node)
    return _BOOLS[value]


def _interval(node: Node, name: str) -> float:
    value = _text(node, name)
    try:
        seconds = parse_duration(value)
    except ValueError:
        raise _Bad(
            f"{name}: {value!r} is not a duration; use a number and a unit (s, m, h, d), e.g. 30m",
            node,
        ) from None
    if seconds <= 0:
        raise _Bad(f"{name} must be longer than zero, not {value!r}", node)
    return seconds


def _size(node: Node, name: str) -> int:
    value = _text(node, name)
    try:
        size = parse_size(value)
    except ValueError:
        raise _Bad(
            f"{name}: {value!r} is not a size; use e.g. 10MiB, 512KiB or a number of bytes",
            node,
        ) from None
    if size <= 0:
        raise _Bad(f"{name} must be more than zero bytes, not {value!r}", node)
    return size


def _count(low: int, high: int) -> Callable[[Node, str], int]:
    def convert(node: Node, name: str) -> int:
        value = _text(node, name)
        if not re.fullmatch(r"[+-]?\d+", value) or not low <= int(value) <= high:
            raise _Bad(f"{name} must be a whole number from {low} to {high}, not {value!r}", node)
        return int(value)

    return convert


def _cron(node: Node, name: str) -> str:
    value = " ".join(_text(node, name).split())
    error = _cron_error(value)
    if error is not None:
        raise _Bad(
            f"cron {value!r} is not a valid schedule ({error}); use 5 fields: "
            'minute hour day-of-month month day-of-week, e.g. "0 7 * * 1-5"',
            node,
        )
    return value


@lru_cache(maxsize=256)
def _cron_error(value: str) -> str | None:
    from apscheduler.triggers.cron import CronTrigger

    try:
        CronTrigger.from_crontab(value, timezone=UTC)
    except ValueError as e:
        return str(e)
    return None


def _param(value: str, node: Node, name: str) -> None:
    if not _PARAM_RE.fullmatch(value):
        raise _Bad(f"{name}: {value!r} is not a query parameter name (e.g. utm_source)", node)


def _selector(node: Node, name: str) -> str:
    value = _text(node, f"select.{name}")
    css, attr = value, None
    at = value.rfind("@")
    if at >= 0 and _ATTR_RE.fullmatch(value[at + 1 :]):
        css, attr = value[:at].strip(), value[at + 1 :]
    elif at >= 0 and "[" not in value:
        raise _Bad(f"select.{name}: after '@' comes an attribute name, e.g. a@href", node)
    if attr is not None and name == "item":
        raise _Bad(
            "select.item picks the repeating element, it cannot read an attribute "
            f"(remove '@{attr}')",
            node,
        )
    if not css:
        raise _Bad(f"select.{name}: put a CSS selector before '@{attr}', e.g. a@{attr}", node)
    error = _css_error(css)
    if error is not None:
        raise _Bad(f"select.{name}: {css!r} is not a valid CSS selector ({error})", node)
    return value


@lru_cache(maxsize=1024)
def _css_error(css: str) -> str | None:
    try:
        import soupsieve
    except ImportError:  # pragma: no cover - soupsieve comes with beautifulsoup4
        return None
    try:
        soupsieve.compile(css)
    except soupsieve.SelectorSyntaxError as e:
        return str(e).splitlines()[0]
    return None
