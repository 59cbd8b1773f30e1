"""The editors' keep/drop rules (`rules:`): regular expressions on a story's fields.

One job: `rule_verdict` says whether the source's rules turn a story away,
and which rule did (for `ingest try`, a poll's note and `ingest refilter`).
A `drop` rule that matches drops the story (the first such rule is named);
when there are `keep` rules, a story must match at least one of them.  A
rule matches when each of its patterns is found (Python `re`, searched,
case-insensitive) in its field: the title, the link as published, the
summary's text (tags removed, entities decoded) or the author.  Patterns
are compiled once per process.  Pure; the rules were checked by config/.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from functools import lru_cache

from ingest.model import Item, Rule, RuleField

__all__ = ["rule_verdict"]

_TAG = re.compile(r"<[^>]*>")


@lru_cache(maxsize=1024)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


def _field(item: Item, field: RuleField, cache: dict[str, str]) -> str:
    if field not in cache:
        if field == "title":
            cache[field] = item.title
        elif field == "link":
            cache[field] = item.url
        elif field == "summary":
            cache[field] = html.unescape(_TAG.sub(" ", item.summary))
        else:
            cache[field] = item.author or ""
    return cache[field]


def _matches(rule: Rule, item: Item, cache: dict[str, str]) -> bool:
    return all(_compiled(p).search(_field(item, f, cache)) for f, p in rule.patterns)


def rule_verdict(rules: Sequence[Rule], item: Item) -> str | None:
    """Why `rules` turn `item` away ("rule drop title='^Sponsored'"), or None when kept."""
    cache: dict[str, str] = {}
    for rule in rules:
        if rule.action == "drop" and _matches(rule, item, cache):
            return f"rule {rule}"
    keeps = [r for r in rules if r.action == "keep"]
    if keeps and not any(_matches(r, item, cache) for r in keeps):
        return "matches none of the keep rules"
    return None
