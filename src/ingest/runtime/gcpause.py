"""The cyclic garbage collector paused while a one-shot command starts up.

One job: `starting()` turns the collector off for a command's start-up and
`settle()`, called once the work begins, moves every object alive then into
the permanent generation (`gc.freeze`) and turns the collector back on.  It
decides nothing about what a command does and frees nothing itself.

Why: start-up (imports above all: modules, classes, functions, the
SQLAlchemy and aiohttp stacks) allocates a few hundred thousand objects that
live as long as the process.  With the collector on, every 700 allocations
start a collection and the older generations are walked again and again as
they grow; an unchanged re-poll of 200 feeds spent about 40 ms of its 0.6 s
there.  After `settle()` the collector runs as usual, but its full
collections no longer walk the start-up's objects (what `gc.freeze` is for).
Nothing that is garbage stays uncollected: objects are only frozen while
alive, and a cycle made during start-up is collected by the first full
collection after `starting()` ends (`gc.unfreeze` puts them back).

A process forked while paused (the database process of `ingest run`) is
paused too and settles itself once its own imports are done.  Outside
`starting()` (the service, tests) `settle()` does nothing.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["settle", "starting"]

_paused = False
_frozen = False


@contextmanager
def starting(*, exiting: bool = False) -> Iterator[None]:
    """The collector off until `settle()`; on leaving, back as it was, nothing left frozen.

    `exiting`: the process ends when this block does (the console script), so what
    `settle()` froze stays frozen and the interpreter's teardown does not walk it again.
    """
    global _paused, _frozen
    if not gc.isenabled():  # someone else's decision: leave it alone
        yield
        return
    gc.disable()
    _paused = True
    try:
        yield
    finally:
        if _frozen and not exiting:
            gc.unfreeze()
        _paused = _frozen = False
        gc.enable()


def settle() -> None:
    """The start-up is over: freeze what it left alive and collect again from here on."""
    global _paused, _frozen
    if not _paused:
        return
    gc.freeze()
    _paused, _frozen = False, True
    gc.enable()
