"""The one exception tree of ingest, rooted at `IngestError`.

Library errors (httpx, feedparser, SQLAlchemy, YAML) are translated into these
at the module that calls the library, with `raise ... from e`, so callers only
ever catch `IngestError` subclasses.  This module defines types only.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "BlockedError",
    "ConfigError",
    "ConfigProblem",
    "CooldownError",
    "FetchError",
    "HTTPStatusError",
    "IngestError",
    "NetworkError",
    "ParseError",
    "RefusedError",
    "StoreError",
    "TimeoutError",
    "TooLargeError",
]


class IngestError(Exception):
    """Base of every error ingest raises on purpose."""

    kind = "error"


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One problem in a sources file, located by file and line."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


class ConfigError(IngestError):
    """sources.yaml is invalid; `problems` lists every mistake found."""

    kind = "config"

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class FetchError(IngestError):
    """A poll got no usable answer."""

    kind = "fetch"

    def __init__(self, message: str, *, url: str | None = None) -> None:
        self.url = url
        super().__init__(message)


class NetworkError(FetchError):
    """DNS, connection refused or reset, TLS: the server could not be talked to."""

    kind = "network"


class RefusedError(FetchError):
    """The network guard refused the address (private, loopback, ...) or the URL's scheme."""

    kind = "refused"


class TimeoutError(FetchError):
    """The whole request took longer than the source's timeout."""

    kind = "timeout"


class TooLargeError(FetchError):
    """The body grew past the source's size cap."""

    kind = "too_large"


class HTTPStatusError(FetchError):
    """The server answered with a status we cannot use (4xx, 5xx, too many redirects)."""

    kind = "http"

    def __init__(
        self,
        message: str,
        *,
        status: int,
        url: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.retry_after = retry_after
        super().__init__(message, url=url)


class BlockedError(HTTPStatusError):
    """The server's bot protection answered (a challenge or CAPTCHA page), not the feed."""

    kind = "blocked"


class CooldownError(FetchError):
    """Not requested: the host told this process to wait (a 429) a moment ago."""

    kind = "cooldown"

    def __init__(self, message: str, *, host: str, seconds: float, reason: str) -> None:
        self.host = host
        self.seconds = seconds  # left of the cool-down
        self.reason = reason
        super().__init__(message)


class ParseError(IngestError):
    """The document could not be read as a feed (or page) at all."""

    kind = "parse"


class StoreError(IngestError):
    """The database refused or failed a read or write."""

    kind = "store"
