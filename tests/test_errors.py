"""The error tree of errors.py: every error pickles whole, and no name shadows a builtin.

One job: prove that an ingest error raised in another process (a parse worker,
the database process) can be sent back and raised again with its class, its
message, its `kind` and its own attributes, and that the tree keeps the kind
words users see.  Pure: pickling only, no process started (the database
process's use of it is in tests/test_store_process.py).
"""

from __future__ import annotations

import builtins
import inspect
import pickle

import pytest

from ingest import errors
from ingest.errors import ConfigProblem

CASES: list[errors.IngestError] = [
    errors.IngestError("plain"),
    errors.ConfigError([ConfigProblem("sources.yaml", 3, "bad"), ConfigProblem("s.yaml", 0, "x")]),
    errors.FetchError("no answer", url="https://example.org/feed"),
    errors.NetworkError("reset", url="https://example.org/a"),
    errors.RefusedError("private address"),
    errors.FetchTimeoutError("took 20s", url="https://example.org/slow"),
    errors.TooLargeError("over 10 MiB"),
    errors.HTTPStatusError("HTTP 503", status=503, url="https://x.test/", retry_after=120.0),
    errors.BlockedError("challenge page", status=403, url="https://x.test/feed"),
    errors.CooldownError("wait", host="x.test", seconds=42.5, reason="HTTP 429 from a"),
    errors.ParseError("not a feed"),
    errors.StoreError("database is locked"),
]


@pytest.mark.parametrize("error", CASES, ids=lambda e: type(e).__name__)
def test_every_error_pickles_with_its_attributes(error: errors.IngestError) -> None:
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is type(error)
    assert str(back) == str(error) and back.args == error.args
    assert back.kind == error.kind
    assert vars(back) == vars(error)  # url, status, retry_after, host, seconds, problems...


def test_every_error_class_is_covered_and_none_shadows_a_builtin() -> None:
    classes = {
        c for _, c in inspect.getmembers(errors, inspect.isclass)
        if issubclass(c, errors.IngestError)
    }  # fmt: skip
    assert classes == {type(e) for e in CASES}
    assert not {c.__name__ for c in classes} & set(dir(builtins))
    assert set(errors.__all__) == {c.__name__ for c in classes} | {"ConfigProblem"}


def test_the_kinds_users_see_are_unchanged() -> None:
    kinds = {type(e).__name__: e.kind for e in CASES}
    assert kinds == {
        "IngestError": "error", "ConfigError": "config", "FetchError": "fetch",
        "NetworkError": "network", "RefusedError": "refused", "FetchTimeoutError": "timeout",
        "TooLargeError": "too_large", "HTTPStatusError": "http", "BlockedError": "blocked",
        "CooldownError": "cooldown", "ParseError": "parse", "StoreError": "store",
    }  # fmt: skip
    assert issubclass(errors.FetchTimeoutError, errors.FetchError)
    assert not issubclass(errors.FetchTimeoutError, builtins.TimeoutError)
