"""`${NAME}` references in a source's `headers:` and `proxy:`: found, filled in, kept secret.

An editor keeps a cookie, a token or a proxy password out of sources.yaml by
writing `${NAME}`; the value comes from the environment of the process that
polls.  This module's one job is those references: `references` lists the
names a value uses (or says what is malformed), `expand` fills them in from
an environment, and `redact` replaces the filled-in values in a message with
`***`, so an error that quotes a proxy or header never shows one.  The
validated `Source` keeps the text as written (`${NAME}`), so neither the
database (`sources.config`) nor `ingest check`, `ingest status` or a log ever
holds the secret itself.  It does not decide which fields allow references
(config/ does) or send anything.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Final

__all__ = ["MissingVariable", "expand", "redact", "references"]

_REF_RE: Final = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]{0,127})\}")
_MASK: Final = "***"


class MissingVariable(LookupError):
    """A `${NAME}` whose variable is not set (or set to nothing) in the environment."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name

    def __str__(self) -> str:
        return f"environment variable {self.name} is not set"


def references(text: str) -> tuple[str, ...]:
    """The variable names `text` refers to, in order; ValueError for a malformed `${`."""
    names = tuple(m.group(1) for m in _REF_RE.finditer(text))
    if "${" in _REF_RE.sub("", text):
        raise ValueError(
            "has a '${' that is not a reference: write ${NAME} with letters, digits and "
            "underscores (starting with a letter or underscore)"
        )
    return names


def expand(text: str, environ: Mapping[str, str]) -> tuple[str, tuple[str, ...]]:
    """`text` with each `${NAME}` replaced by its value, and the values used (the secrets).

    Raises `MissingVariable` for a name that is unset or empty.
    """
    used: list[str] = []

    def fill(m: re.Match[str]) -> str:
        value = environ.get(m.group(1), "")
        if not value:
            raise MissingVariable(m.group(1))
        used.append(value)
        return value

    return _REF_RE.sub(fill, text), tuple(used)


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret replaced by `***` (the longest first)."""
    for secret in sorted(set(secrets), key=len, reverse=True):
        if secret:
            text = text.replace(secret, _MASK)
    return text
