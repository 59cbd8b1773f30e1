"""Converter for `rules:` (in `defaults:` and per source): keep and drop rules, as regexes.

This module's one job is `_rules`, the (value node, field name) -> rules
converter the checker runs, raising `_Bad` at the line of the first mistake:
`rules:` is a list whose items are `keep:` or `drop:` each with a block of
`title`, `link`, `summary` and `author` patterns (Python regular
expressions, at most 500 characters, compiled here so that a bad one is
reported by `ingest check`, not at poll time).  It does not apply rules
(filters.py does) or decide where they may be written (source_fields,
validate).
"""

from __future__ import annotations

import re
from typing import Final, Literal

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from ingest.config.values import _Bad, _text
from ingest.config.yaml_nodes import _is_null, _kind_of
from ingest.model import Rule, RuleField

__all__ = ["MAX_PATTERN", "MAX_RULES", "RULE_FIELDS", "_rules"]

MAX_RULES: Final = 100
MAX_PATTERN: Final = 500
RULE_FIELDS: Final[tuple[RuleField, ...]] = ("title", "link", "summary", "author")
_EXAMPLE: Final = "e.g. '- drop: {title: \"^Sponsored\"}'"


def _rules(
    node: Node, name: str, scope: Literal["defaults", "source"] = "source"
) -> tuple[Rule, ...]:
    """`rules:`, a list of `- keep: {field: pattern, ...}` / `- drop: {...}` items."""
    if not isinstance(node, SequenceNode):
        raise _Bad(
            f"{name} must be a list of keep: or drop: rules ({_EXAMPLE}), not {_kind_of(node)}",
            node,
        )
    if len(node.value) > MAX_RULES:
        raise _Bad(f"{name} has {len(node.value)} rules; at most {MAX_RULES} are allowed", node)
    out: list[Rule] = []
    for item in node.value:
        if not isinstance(item, MappingNode) or len(item.value) != 1:
            raise _Bad(f"each of {name} must be one keep: or drop: ({_EXAMPLE})", item)
        key_node, body = item.value[0]
        action = key_node.value if isinstance(key_node, ScalarNode) else None
        if action not in ("keep", "drop"):
            raise _Bad(f"{name}: {action!r} is not keep or drop ({_EXAMPLE})", key_node)
        if not isinstance(body, MappingNode) or not body.value:
            what = "empty" if _is_null(body) else _kind_of(body)
            raise _Bad(
                f"{name}: {action} needs a block of field: pattern lines "
                f"({', '.join(RULE_FIELDS)}), not {what}",
                body,
            )
        patterns: list[tuple[RuleField, str]] = []
        for field_node, pattern_node in body.value:
            field = field_node.value if isinstance(field_node, ScalarNode) else None
            known = next((f for f in RULE_FIELDS if f == field), None)
            if known is None or known in dict(patterns):
                raise _Bad(
                    f"{name}: {action}: {field!r} is not one of {', '.join(RULE_FIELDS)}"
                    if known is None
                    else f"{name}: {action}: {field} is given twice",
                    field_node,
                )
            pattern = _text(pattern_node, f"{name}: {action}: {known}")
            if len(pattern) > MAX_PATTERN:
                raise _Bad(
                    f"{name}: {action}: {known} pattern is {len(pattern)} characters; "
                    f"at most {MAX_PATTERN}",
                    pattern_node,
                )
            try:
                re.compile(pattern, re.IGNORECASE)
            except re.error as e:
                raise _Bad(
                    f"{name}: {action}: {known} is not a regular expression ({e})", pattern_node
                ) from None
            patterns.append((known, pattern))
        out.append(Rule(action, tuple(patterns), scope))
    return tuple(out)
