"""The one exception tree of ingest, rooted at `IngestError`.

Library errors (httpx, feedparser, SQLAlchemy, YAML) are translated into these
at the module that calls the library, with `raise ... from e`, so callers only
ever catch `IngestError` subclasses.  This module defines types only.

    IngestError                 kind "error"
    ├── ConfigError             "config": sources.yaml is invalid (every problem, file:line)
    ├── FetchError              "fetch": a poll got no usable answer
    │   ├── NetworkError        "network": DNS, refused, reset, TLS
    │   ├── RefusedError        "refused": the network guard said no
    │   ├── FetchTimeoutError   "timeout": the whole request took too long
    │   ├── TooLargeError       "too_large": the body passed the size cap
    │   ├── CooldownError       "cooldown": not requested, the host asked us to wait
    │   └── HTTPStatusError     "http": a status we cannot use
    │       └── BlockedError    "blocked": a bot-protection challenge, not the feed
    ├── ParseError              "parse": the document cannot be read at all
    └── StoreError              "store": the database refused or failed

`kind` is the word reports, `ingest status` and the metrics show.  Every
error pickles with its attributes (`IngestError.__reduce__`), so one raised in
a worker or the database process can be raised again in the parent.  No
name here shadows a builtin: the fetch deadline is `FetchTimeoutError`
(Python's own `TimeoutError` is what asyncio raises).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "BlockedError",
    "ConfigError",
    "ConfigProblem",
    "CooldownError",
    "FetchError",
    "FetchTimeoutError",
    "HTTPStatusError",
    "IngestError",
    "NetworkError",
    "ParseError",
    "RefusedError",
    "StoreError",
    "TooLargeError",
]


def _rebuilt(cls: type[IngestError], args: tuple[Any, ...], state: dict[str, Any]) -> IngestError:
    """An error as pickled: its class, message arguments and attributes, no __init__ call."""
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class IngestError(Exception):
    """Base of every error ingest raises on purpose."""

    kind = "error"

    def __reduce__(self) -> tuple[Any, ...]:
        # Exception's own reduce calls cls(*args), which fails for the errors whose
        # __init__ takes keywords (status=, host=, ...): rebuild without __init__
        return _rebuilt, (type(self), self.args, dict(self.__dict__))


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


class FetchTimeoutError(FetchError):
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
