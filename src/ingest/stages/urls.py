"""Web addresses as strings: a link's identity form, its shown form, and absolute http(s) URLs.

One job: the URL rules the pipeline shares.  `canonical_url` is the identity
form (https, lower-case host, no default port, fragment or tracking
parameters, sorted query, normalized percent-encoding); `clean_url` is the
link shown to readers: exactly as published minus tracking parameters
(`TRACKING_PARAMS`, every `utm_*`, and a source's own `strip_params`);
`absolute_http_url` resolves a link against a base and keeps it only when
it is an http(s) URL with a host.  Standard library only.  It does no
network or DNS work (which addresses may be connected to is
`ingest.stages.netguard`), reads no documents, and decides no identity beyond the
URL (entry keys are `ingest.stages.normalize`'s).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from urllib.parse import quote, unquote, urljoin, urlsplit, urlunsplit

__all__ = [
    "TRACKING_PARAMS",
    "absolute_http_url",
    "canonical_url",
    "clean_url",
    "href_url",
    "joins_as_is",
    "url_fragment",
]

# Dropped everywhere (compared case-insensitively), plus every `utm_*` parameter.
TRACKING_PARAMS = frozenset(
    {
        *("fbclid", "gclid", "dclid", "msclkid", "mc_cid", "mc_eid"),
        *("igshid", "yclid", "_hsenc", "_hsmi", "mkt_tok", "ref_src"),
    }
)

_HTTP = frozenset({"http", "https"})
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_PCT = re.compile(r"%([0-9A-Fa-f]{2})")
_PATH_SAFE = "/:@!$&'()*+,;=%"
_QUERY_SAFE = "/:@!$'()*+,;?=%"
_FRAGMENT_SAFE = "/:@!$&'()*+,;?=%"


def canonical_url(url: str, strip_params: Iterable[str] = ()) -> str:
    """The identity form of an http(s) link, equal for every spelling of one page.

    http and https alike (as https), lower-case host without a trailing dot,
    no default port (80, 443), no fragment, no tracking parameters (`utm_*`,
    `TRACKING_PARAMS`, `strip_params`; names compared case-insensitively),
    remaining query parameters sorted by name (repeated names keep their
    order), empty query dropped, empty path as "/", percent-encoding
    normalized (unreserved characters decoded, escapes in upper case,
    non-ASCII encoded as UTF-8).  A string that is not a URL is returned
    stripped but otherwise unchanged.
    """
    url = url.strip()
    ordinary = _ORDINARY.fullmatch(url) if url.isascii() else None
    if ordinary is not None:  # already canonical but for the scheme, the query and a fragment
        host, path, query = ordinary.groups()
        kept = _filter_query(query or "", _drop_set(strip_params), canonical=True)
        return f"https://{host}{path or '/'}{'?' + kept if kept else ''}"
    return _canonical(url, strip_params)


# An http(s) URL whose host, path and query `_canonical` would keep as they are, but for
# the query's own canonical form: a lower-case scheme, a lower-case ASCII host without
# user, port, brackets or trailing dot, a path of characters that need no escaping
# (no `%`), and nothing `urlsplit` drops (tabs, line breaks).
_ORDINARY = re.compile(
    r"https?://([a-z0-9_-]+(?:\.[a-z0-9_-]+)*)"
    r"(/[A-Za-z0-9\-._~/:@!$&'()*+,;=]*)?"
    r"(?:\?([^#\t\r\n]*))?(?:#[^\t\r\n]*)?"
)


def _canonical(url: str, strip_params: Iterable[str]) -> str:
    """`canonical_url` of a stripped `url`, whatever its shape."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return url
    scheme = parts.scheme.lower()
    netloc = parts.netloc
    if netloc:
        host = (parts.hostname or "").rstrip(".")
        if ":" in host:  # IPv6 literal
            host = f"[{host}]"
        if port is not None and not (port in (80, 443) and scheme in _HTTP):
            host = f"{host}:{port}"
        userinfo = netloc.rpartition("@")[0] if "@" in netloc else ""
        netloc = f"{userinfo}@{host}" if userinfo else host
    if scheme in _HTTP:
        scheme = "https"
    path = _encode(parts.path, _PATH_SAFE) or ("/" if netloc else "")
    query = _filter_query(parts.query, _drop_set(strip_params), canonical=True)
    return urlunsplit((scheme, netloc, path, query, ""))


def url_fragment(url: str) -> str:
    """The fragment of `url` (after "#"), its percent-encoding normalized as
    `canonical_url` normalizes a path; "" when there is none."""
    fragment = url.strip().partition("#")[2]
    return _encode(fragment, _FRAGMENT_SAFE) if fragment else ""


def clean_url(url: str, strip_params: Iterable[str] = ()) -> str:
    """The link to show readers: as published, minus tracking parameters.

    Scheme, host, path, the order and spelling of the other parameters and
    the fragment are kept exactly.
    """
    url = url.strip()
    before_fragment, hashmark, fragment = url.partition("#")
    head, question, query = before_fragment.partition("?")
    if not question:
        return url
    kept = _filter_query(query, _drop_set(strip_params), canonical=False)
    if kept == query:
        return url
    return head + ("?" + kept if kept else "") + hashmark + fragment


def _drop_set(strip_params: Iterable[str]) -> frozenset[str]:
    """Lower-case names of the parameters to drop: the tracking ones plus `strip_params`."""
    extra = strip_params if isinstance(strip_params, tuple) else tuple(strip_params)
    return _drop_set_for(extra) if extra else TRACKING_PARAMS


@lru_cache(maxsize=256)
def _drop_set_for(extra: tuple[str, ...]) -> frozenset[str]:
    return TRACKING_PARAMS | {p.strip().lower() for p in extra}


def _filter_query(query: str, drop: frozenset[str], *, canonical: bool) -> str:
    if not query:
        return ""
    kept: list[tuple[str, str]] = []
    for part in query.split("&"):
        if not part:
            continue
        name = part.partition("=")[0]
        if "%" in name or "+" in name:
            name = unquote(name.replace("+", " "))
        key = name.lower()
        if key.startswith("utm_") or key in drop:
            continue
        kept.append((key, _encode(part, _QUERY_SAFE) if canonical else part))
    if canonical:
        kept.sort(key=lambda pair: pair[0])  # stable: repeated names keep their order
    return "&".join(part for _, part in kept)


def _encode(text: str, safe: str) -> str:
    """Normalized percent-encoding: unreserved escapes decoded, others upper-cased."""
    if "%" in text:
        text = _PCT.sub(_fix_escape, text)
    return quote(text, safe=safe)


def _fix_escape(m: re.Match[str]) -> str:
    char = chr(int(m.group(1), 16))
    return char if char in _UNRESERVED else "%" + m.group(1).upper()


# An absolute http(s) URL that `urljoin` and `urlsplit` leave exactly as it is: a lower-case
# scheme, a host, and none of what they drop, split off or check (tabs and line breaks, `;`
# parameters, the brackets of an IPv6 host); `joins_as_is` adds the rest.
_AS_IS = re.compile(r"https?://[^/?#\[\];\t\r\n][^\[\];\t\r\n]*")


def joins_as_is(url: str, base: str) -> bool:
    """Whether `urljoin(base, url)` is `url` itself and `urlsplit(url)` finds an http(s)
    scheme and a host without raising, so that both can be skipped.

    True only for an ASCII absolute http(s) URL of the shape `_AS_IS` allows, without an
    empty query or fragment (`?#`, a trailing `?` or `#`, which a join drops), against a base
    that is empty or ASCII without brackets (one `urljoin` could not parse raises).
    `tests/test_urls_as_is.py` compares it with the joins on generated URLs and bases.
    """
    return (
        url.isascii()
        and _AS_IS.fullmatch(url) is not None
        and url[-1] not in "?#"
        and "?#" not in url
        and (not base or (base.isascii() and "[" not in base and "]" not in base))
    )


def absolute_http_url(url: str | None, base: str) -> str | None:
    """`url` made absolute against `base`, when that is an http(s) URL with a host."""
    if not url:
        return None
    url = url.strip()
    if joins_as_is(url, base):  # most links: already absolute, nothing to join or check
        return url
    try:
        absolute = urljoin(base, url) if base else url
        parts = urlsplit(absolute)
    except ValueError:
        return None
    if parts.scheme.lower() not in _HTTP or not parts.netloc:
        return None
    return absolute


_URL_WHITESPACE = dict.fromkeys(map(ord, "\t\n\r"))


def href_url(value: str | None, base: str) -> str | None:
    """An HTML href or src as a browser follows it: tabs and line breaks dropped, a
    fragment-only link ignored, the rest made absolute against `base` (http(s) only)."""
    if not value:
        return None
    value = value.strip().translate(_URL_WHITESPACE)
    if not value or value.startswith("#"):
        return None
    return absolute_http_url(value, base)
