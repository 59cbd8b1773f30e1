"""Read a mapping's fields and values off the node tree, recording problems by line.

This module's one job is `_FieldChecker`, the problem-collecting base of the
checker: it gathers a mapping's known fields (expanding `<<:` merges and
reporting unknown, misspelled, repeated and non-word keys; each merged mapping
once, and no more than `MERGE_BUDGET` merged fields in a file), runs a converter on
a value and records its `_Bad` at the value's line, and reads a word-or-list
field; `_fail` raises a single problem at once.  It knows no field of
sources.yaml (callers pass the allowed names and hints), applies no defaults
and builds no `Source`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import NoReturn, TypeVar

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from ingest.config.values import _Bad, _did_you_mean, _text
from ingest.config.yaml_nodes import _MERGE_TAG, _NULL_TAG, _STR_TAG, _is_null, _kind_of, _line
from ingest.errors import ConfigError, ConfigProblem
from ingest.stages.controls import printable

__all__ = ["MERGE_BUDGET", "_FieldChecker", "_fail"]

_T = TypeVar("_T")
# Fields that all the `<<:` merges of one file may bring in: a file of 10,000 sources
# that each merge 20 fields uses 200,000; a merge-key bomb passes it and is refused.
MERGE_BUDGET = 200_000


def _fail(path: str, line: int, message: str) -> NoReturn:
    raise ConfigError([ConfigProblem(path, line, message)])


class _FieldChecker:
    """Collects `problems`; `source_fields._SourceChecker` and `validate._Checker` build on it."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.problems: list[ConfigProblem] = []
        self.merged = 0  # pairs brought in by `<<:` merges so far, against MERGE_BUDGET

    def add(self, line: int, message: str) -> None:
        # a message may quote the file (an unknown field's name): no control character in
        # it reaches a terminal, a log or the database (the heartbeat's config_error)
        self.problems.append(ConfigProblem(self.path, line, printable(message)))

    def bad(self, e: _Bad, fallback: Node, where: str = "") -> None:
        node = e.node if e.node is not None else fallback
        self.add(_line(node), f"{where}{e.message}")

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
            at = next(_line(k) for k, _ in node.value if k.tag == _MERGE_TAG)
            for key_node, value_node in self._merged(merges, set(), set(), at):
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

    def _merged(
        self, merges: list[Node], active: set[int], done: set[int], at: int
    ) -> Iterator[tuple[Node, Node]]:
        """The pairs that `<<:` values bring in, earlier merges winning, nested ones expanded.

        A mapping merged a second time brings nothing new (its pairs already came in,
        winning), so it is skipped: `<<: [*prev, *prev]` nested n deep costs n steps, not
        2**n.  All the merges of one file together may bring in `MERGE_BUDGET` pairs;
        past that the file is refused at line `at` (the `<<` being expanded).
        """
        for value_node in merges:
            parts = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
            for part in parts:
                if not isinstance(part, MappingNode):
                    self.add(_line(part), "'<<' must merge a mapping (an &anchor of key: values)")
                    continue
                if id(part) in active:
                    self.add(_line(part), "'<<' merges a mapping into itself")
                    continue
                if id(part) in done:
                    continue
                done.add(id(part))
                self.merged += len(part.value)
                if self.merged > MERGE_BUDGET:
                    self.add(
                        at,
                        f"the '<<' merges of this file bring in more than {MERGE_BUDGET:,} "
                        "fields in all; write the sources out instead of merging so much",
                    )
                    raise ConfigError(sorted(dict.fromkeys(self.problems), key=lambda p: p.line))
                active.add(id(part))
                nested: list[Node] = []
                for key_node, inner in part.value:
                    if key_node.tag == _MERGE_TAG:
                        nested.append(inner)
                    else:
                        yield key_node, inner
                yield from self._merged(nested, active, done, at)
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

    def optional(
        self,
        f: Mapping[str, tuple[Node, Node]],
        name: str,
        convert: Callable[[Node, str], _T],
        default: _T,
        where: str = "",
    ) -> _T:
        """Field `name` of `f` converted; `default` when it is absent or empty, or when
        converting it failed (the problem is recorded)."""
        if name not in f or _is_null(f[name][1]):
            return default
        value = self.convert(f[name], convert, name, where)
        return default if value is None else value

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
