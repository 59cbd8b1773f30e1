"""Is this answer a bot-protection challenge rather than the feed?  One pure check.

Sites behind a CDN's bot protection (Cloudflare, Akamai, AWS WAF, Imperva,
DataDome, ...) answer an unknown client with a small HTML page, usually with
HTTP 403, 429 or 503 and sometimes with 200, that asks a browser to run
JavaScript or solve a CAPTCHA.  Read as a feed it is "not a feed"; read as a
status it looks like an ordinary error.  `challenge_of` names the protection
from the answer's headers and the start of its body, so the poll can fail
with kind `blocked` and a message that says what to do.  It does no I/O and
makes no decision about retrying (policy.py) or reporting (fetch.py).
"""

from __future__ import annotations

from typing import Final, Protocol

__all__ = ["SNIFF_BYTES", "challenge_of"]

SNIFF_BYTES: Final = 64 * 1024  # how much of a body is looked at: challenge pages are small

# (vendor, header name, text in its value or "" for any value): a header only a challenge sends
_HEADER_MARKS: Final = (
    ("Cloudflare", "cf-mitigated", "challenge"),
    ("AWS WAF", "x-amzn-waf-action", ""),
    ("DataDome", "x-datadome", ""),
    ("Sucuri", "x-sucuri-block", ""),
)
# (vendor, text in the lower-cased body): marks of a challenge page
_BODY_MARKS: Final = (
    ("Cloudflare", "/cdn-cgi/challenge-platform/"),
    ("Cloudflare", "cf_chl_opt"),
    ("Cloudflare", "<title>just a moment...</title>"),
    ("Cloudflare", "attention required! | cloudflare"),
    ("AWS WAF", "awswafintegration"),
    ("AWS WAF", "awswafcookiedomainlist"),
    ("DataDome", "captcha-delivery.com"),
    ("Imperva", "_incapsula_resource"),
    ("Imperva", "incapsula incident id"),
    ("PerimeterX", "px-captcha"),
    ("Sucuri", "sucuri website firewall"),
    ("DDoS-Guard", "ddos-guard"),
    ("Akamai", "errors.edgesuite.net"),
    ("Vercel", "vercel security checkpoint"),
)
# Without a vendor's mark, a refusal (403/429/503) whose HTML page asks for this is a challenge
_GENERIC_MARKS: Final = (
    "g-recaptcha",
    "h-captcha",
    "hcaptcha.com",
    "challenges.cloudflare.com/turnstile",
    "enable javascript and cookies to continue",
    "please verify you are a human",
    "verify you are human",
)
_REFUSALS: Final = frozenset({403, 429, 503})


class Headers(Protocol):
    """What is read of an answer's headers: a value by lower-case name, or None."""

    def get(self, key: str, default: None = None) -> str | None: ...


def challenge_of(status: int, headers: Headers, body: bytes) -> str | None:
    """The protection that answered (e.g. "Cloudflare", "a CAPTCHA"), or None for a real answer.

    `headers` are looked up case-insensitively by lower-case name (as in an
    `httpx.Headers` or the direct lane's answer); only the first `SNIFF_BYTES`
    of `body` are read.  A 2xx answer counts only with a vendor's mark (a feed
    may well mention a CAPTCHA); a refusal also with a generic CAPTCHA or
    "enable JavaScript" page.
    """
    for vendor, name, text in _HEADER_MARKS:
        value = headers.get(name)
        if value is not None and text in value.lower():
            return vendor
    if not body:
        return None
    head = body[:SNIFF_BYTES].decode("utf-8", "replace").lower()
    if "<" not in head or not _looks_like_html(head):
        return None
    for vendor, mark in _BODY_MARKS:
        if mark in head:
            return vendor
    if status in _REFUSALS and any(mark in head for mark in _GENERIC_MARKS):
        return "a CAPTCHA or JavaScript check"
    return None


def _looks_like_html(head: str) -> bool:
    start = head.lstrip()[:512]
    return start.startswith(("<!doctype html", "<html")) or "<html" in head[:4096]
