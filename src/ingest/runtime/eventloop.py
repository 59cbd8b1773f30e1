"""Run a command's coroutine to the end on the fastest event loop installed.

uvloop (installed with ingest, but for Windows) schedules callbacks, wakes
from other threads and drives sockets in C: an unchanged poll, which is
mostly the event loop's and the HTTP client's work, costs less CPU on it.
Without uvloop this is `asyncio.run`.  It does not choose what runs on the
loop, nor set up signals or threads: the commands do.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["run"]

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """`main`'s result, run on a new uvloop loop (or asyncio's), closed afterwards."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - installed with ingest where it builds
        return asyncio.run(main)
    return uvloop.run(main)
