"""A source's own request settings for one poll: its `headers:` and `proxy:`, filled in.

One job: `SourceRequest.of(source)` fills in the `${NAME}` references of the
source's headers and proxy from this process's environment (`envrefs`),
keeps the values that came from there (so fetch.py can hide them in any
message), and says which headers go with each hop of a poll: the User-Agent
on every hop, the others (cookies, tokens) only to the host of the source's
own URL.  It sends nothing (fetch.py does) and checks no shape (config/ did),
but a value filled in from the environment must be printable ASCII, the rule
sources.yaml's own values follow (`controls.PRINTABLE_ASCII`).
"""

from __future__ import annotations

import os
from typing import Final
from urllib.parse import urlsplit

from ingest import errors
from ingest.model import Source
from ingest.stages.controls import PRINTABLE_ASCII
from ingest.stages.envrefs import MissingVariable, expand
from ingest.stages.transport import PROXY_EXTENSION

__all__ = ["SourceRequest"]


class SourceRequest:
    """A source's own request settings, filled in from the environment for one poll."""

    __slots__ = ("extensions", "headers", "other", "secrets", "user_agent")

    def __init__(
        self,
        user_agent: str | None,
        other: dict[str, str],
        proxy: str | None,
        secrets: tuple[str, ...],
    ) -> None:
        self.user_agent = user_agent
        self.other = other
        self.extensions = {PROXY_EXTENSION: proxy} if proxy else {}
        self.secrets = secrets

    @classmethod
    def of(cls, source: Source) -> SourceRequest:
        if not source.headers and source.proxy is None:
            return _NO_REQUEST
        secrets: list[str] = []
        try:
            user_agent: str | None = None
            other: dict[str, str] = {}
            for name, template in source.headers:
                value, used = expand(template, os.environ)
                secrets += used
                if not PRINTABLE_ASCII.fullmatch(value):  # a secret: not in the message
                    raise errors.FetchError(
                        f"headers: {name}: the value filled in from the environment is not "
                        "printable ASCII, as an HTTP header must be (see docs/sources.md)",
                        url=source.url,
                    )
                if name.lower() == "user-agent":
                    user_agent = value
                else:
                    other[name] = value
            proxy = None
            if source.proxy is not None:
                proxy, used = expand(source.proxy, os.environ)
                secrets += used
        except MissingVariable as e:
            raise errors.FetchError(
                f"{e} in this process; the source's headers: or proxy: needs it "
                "(set it where ingest polls, see docs/sources.md)",
                url=source.url,
            ) from None
        return cls(user_agent, other, proxy, tuple(secrets))

    def headers_for(self, url: str, home: str) -> dict[str, str | bytes]:
        """The headers of one hop: the User-Agent on every hop, the others (cookies,
        tokens) only to the host of the source's own URL, never to a redirect elsewhere."""
        headers: dict[str, str | bytes] = {}  # fetch.py adds the validators (bytes or text)
        if self.user_agent is not None:
            headers["User-Agent"] = self.user_agent
        if self.other and (urlsplit(url).hostname or "").lower() == home:
            headers.update(self.other)
        return headers


_NO_REQUEST: Final = SourceRequest(None, {}, None, ())
