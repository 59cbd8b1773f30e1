"""Check the values written in another tool's notation, by asking the code that reads them.

This module's one job is the converters for cron strings (as `policy.cron_trigger`
reads them: crontab weekdays, 0 or 7 = Sunday), `select:` CSS selectors with
their optional `@attr` (compiled by soupsieve), strptime `date_format`s and
`allow_networks` CIDR networks (`netguard.parse_network`) and the WebSub
`websub_callback` base URL (http(s), a host, no query or fragment); each takes (value
node, field name) to a value or raises `_Bad`, as in `values`.  It does not
walk mappings, know which field goes where, or collect problems.  apscheduler
and soupsieve are imported only when a cron string or a selector is first
checked.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Final

from yaml.nodes import Node

from ingest.config.values import _Bad, _text, _url

__all__ = ["_callback", "_cron", "_date_format", "_network", "_selector"]

_ATTR_RE: Final = re.compile(r"[A-Za-z_:][-\w:.]*")


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
    from ingest.stages.policy import cron_trigger  # crontab weekdays (0 or 7 = Sunday), as polled

    try:
        cron_trigger(value)
    except ValueError as e:
        return str(e)
    return None


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


def _date_format(node: Node, name: str) -> str:
    """A strptime format that names at least a day, month or year directive."""
    value = _text(node, name)
    if not re.search(r"%[dbBmyYjaAxc]", value):
        raise _Bad(f"{name} {value!r} has no date directive (e.g. '%d/%m/%Y' or '%B %d, %Y')", node)
    from datetime import datetime

    try:
        datetime(2026, 3, 12).strftime(value)
    except ValueError as e:
        raise _Bad(f"{name} {value!r} is not a valid date format: {e}", node) from None
    return value


def _network(value: str, node: Node, name: str) -> None:
    """A CIDR network for the network guard (`127.0.0.0/8`, `::1/128`)."""
    from ingest.stages.netguard import parse_network

    try:
        parse_network(value)
    except ValueError as e:
        raise _Bad(f"{name}: {e}", node) from None


def _callback(node: Node, name: str) -> str:
    """The public base URL that reaches `ingest serve` (hubs call it + /websub/ID)."""
    value = _url(node, name)
    if "?" in value or "#" in value:
        raise _Bad(
            f"{name} {value!r} must be a base URL without '?' or '#': hubs call it with "
            "/websub/ and an id added to its path",
            node,
        )
    return value
