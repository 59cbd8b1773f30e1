"""Converters for a source's request and repair settings: headers, proxy, timezone, identity.

This module's one job is to judge these values, each a (value node, field
name) -> value converter raising `_Bad` like those of `values`: `headers:` is
a mapping of HTTP header names to values (printable ASCII, no header that
ingest itself must control), `proxy:` an `http://`, `socks5://` or
`socks5h://` URL, `timezone:` an IANA zone name known to `zoneinfo`, and
`identity:` one of guid, link, title, content; and, under `settings:`,
`host_delays:` (host name: duration).
Header values and the proxy may hold `${NAME}` references to the environment
(`envrefs`); only their shape is checked here, and they are kept as written,
so no secret is ever part of a `Source`.  It does not walk sources or apply
defaults (`source_fields` does).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Final
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from yaml.nodes import MappingNode, Node, ScalarNode

from ingest.config.values import _Bad, _text, _timeout
from ingest.config.yaml_nodes import _NULL_TAG, _is_null, _kind_of
from ingest.model import Identity
from ingest.stages.controls import PRINTABLE_ASCII
from ingest.stages.envrefs import references

__all__ = [
    "IDENTITIES",
    "MAX_HEADERS",
    "PROXY_SCHEMES",
    "_headers",
    "_identity",
    "_proxy",
    "_timezone",
]

MAX_HEADERS: Final = 32
_MAX_VALUE: Final = 8192
PROXY_SCHEMES: Final = ("http", "socks5", "socks5h")
_TOKEN_RE: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}")
# headers ingest sets itself, for the request to work at all (framing, decoding, caching)
_OURS: Final = {
    "host": "the host comes from the source's url",
    "content-length": "a poll sends no body",
    "transfer-encoding": "a poll sends no body",
    "connection": "connections are managed by ingest",
    "keep-alive": "connections are managed by ingest",
    "upgrade": "connections are managed by ingest",
    "te": "connections are managed by ingest",
    "trailer": "a poll sends no body",
    "accept-encoding": "ingest asks for the compressions it can decode (gzip, deflate)",
    "if-none-match": "ingest sends the validators of the last answer itself",
    "if-modified-since": "ingest sends the validators of the last answer itself",
    "range": "a feed is read whole",
    "proxy-authorization": "put the proxy's user and password in the proxy: URL",
}


def _headers(node: Node, name: str) -> tuple[tuple[str, str], ...]:
    """`headers:`, a block of `Header-Name: value` lines, as (name, value) pairs in order."""
    if not isinstance(node, MappingNode):
        raise _Bad(
            f"{name} must be a block of Header-Name: value lines, not {_kind_of(node)}", node
        )
    if len(node.value) > MAX_HEADERS:
        raise _Bad(f"{name} has {len(node.value)} headers; at most {MAX_HEADERS} are allowed", node)
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for key_node, value_node in node.value:
        if not isinstance(key_node, ScalarNode) or key_node.tag == _NULL_TAG:
            raise _Bad(f"{name}: header names must be plain words", key_node)
        header = str(key_node.value).strip()
        if not _TOKEN_RE.fullmatch(header):
            raise _Bad(
                f"{name}: {header!r} is not a header name (letters, digits and -, as in "
                "User-Agent)",
                key_node,
            )
        lower = header.lower()
        if lower in _OURS:
            raise _Bad(f"{name}: {header} cannot be set here: {_OURS[lower]}", key_node)
        if lower in seen:
            raise _Bad(f"{name}: {header} is given twice", key_node)
        seen.add(lower)
        if _is_null(value_node):
            raise _Bad(f"{name}: {header} is empty", value_node)
        value = _text(value_node, f"{name}: {header}")
        if len(value) > _MAX_VALUE or not PRINTABLE_ASCII.fullmatch(value):
            raise _Bad(
                f"{name}: {header} may only use printable ASCII characters, at most "
                f"{_MAX_VALUE} of them, as an HTTP header must",
                value_node,
            )
        _refs(value, value_node, f"{name}: {header}")
        out.append((header, value))
    return tuple(out)


def _proxy(node: Node, name: str) -> str:
    """An `http://`, `socks5://` or `socks5h://` proxy URL, with an optional user:password@."""
    value = _text(node, name)
    _refs(value, node, name)
    shown = re.sub(r"\$\{[^}]*\}", "x", value)  # judged with each reference as a plain word
    try:
        parts = urlsplit(shown)
        port = parts.port
        ok = parts.scheme in PROXY_SCHEMES and bool(parts.hostname) and port is not None
        ok = ok and parts.path in ("", "/") and not parts.query and not parts.fragment
    except ValueError:
        ok = False
    if not ok or not PRINTABLE_ASCII.fullmatch(value) or " " in value:
        raise _Bad(
            f"{name} must be a proxy address such as http://proxy.example:3128 or "
            "socks5://user:${PROXY_PASSWORD}@127.0.0.1:1080 (scheme http, socks5 or socks5h, "
            "a host and a port)",
            node,
        )
    return value


IDENTITIES: Final[tuple[Identity, ...]] = ("guid", "link", "title", "content")


def _identity(node: Node, name: str) -> Identity:
    """What names an entry of the source: guid, link, title or content."""
    value = _text(node, name)
    for known in IDENTITIES:
        if value == known:
            return known
    raise _Bad(f"{name} must be one of {', '.join(IDENTITIES)}, not {value!r}", node)


_HOST_RE: Final = re.compile(
    r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*"
)


def _host_delays(node: Node, name: str) -> tuple[tuple[str, float], ...]:
    """`host_delays:`, a block of `host.name: duration` lines (a domain covers its subdomains)."""
    if not isinstance(node, MappingNode):
        raise _Bad(f"{name} must be a block of host: duration lines, not {_kind_of(node)}", node)
    out: dict[str, float] = {}
    for key_node, value_node in node.value:
        host = str(key_node.value).strip().lower() if isinstance(key_node, ScalarNode) else ""
        if not _HOST_RE.fullmatch(host) or len(host) > 253:
            raise _Bad(
                f"{name}: {host or key_node.value!r} is not a host name (e.g. bmj.com)", key_node
            )
        if host in out:
            raise _Bad(f"{name}: {host} is given twice", key_node)
        out[host] = _timeout(value_node, f"{name}: {host}")
    return tuple(out.items())


def _timezone(node: Node, name: str) -> str:
    """An IANA time zone name: Europe/London, America/New_York, UTC."""
    value = _text(node, name)
    if not _known_zone(value):
        raise _Bad(
            f"{name} {value!r} is not a time zone name; use one like Europe/London or "
            "America/New_York (the IANA names)",
            node,
        )
    return value


@lru_cache(maxsize=256)
def _known_zone(value: str) -> bool:
    if value.startswith("/") or ".." in value or "\\" in value:
        return False
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


def _refs(value: str, node: Node, name: str) -> None:
    try:
        references(value)
    except ValueError as e:
        raise _Bad(f"{name} {e}", node) from None
