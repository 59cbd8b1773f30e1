"""Compose YAML text into nodes that know their lines, and describe those nodes.

This module's one job is the YAML layer under the checker: the loaders
(libyaml's parser when PyYAML has it, PyYAML's pure-Python one otherwise), a
resolver that tags a scalar only as null, `<<` merge or str, so that values
keep the text the editor typed; the few questions asked of a node (its line,
is it null, how to name it in a message); and a syntax error's line and
message, with a hint for the usual mistakes.  It does not convert values,
know any field of sources.yaml, or collect problems.
"""

from __future__ import annotations

from typing import Final

import yaml
from yaml.composer import Composer
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.scanner import Scanner

__all__ = [
    "_MERGE_TAG",
    "_NULL_TAG",
    "_STR_TAG",
    "_Loader",
    "_PyLoader",
    "_TextResolver",
    "_is_null",
    "_kind_of",
    "_line",
    "_syntax_problem",
]

_NULL_TAG: Final = "tag:yaml.org,2002:null"
_STR_TAG: Final = "tag:yaml.org,2002:str"
_MERGE_TAG: Final = "tag:yaml.org,2002:merge"
_SEQ_TAG: Final = "tag:yaml.org,2002:seq"
_MAP_TAG: Final = "tag:yaml.org,2002:map"
_NULLS: Final = frozenset(("", "~", "null", "Null", "NULL"))

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
    __all__ += ["_CLoader"]


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


def _syntax_problem(text: str, e: yaml.YAMLError) -> tuple[int, str]:
    """The line and message for a YAML syntax error, with a hint where one helps."""
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
    return line, message
