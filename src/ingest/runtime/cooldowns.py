"""What a polling process knows of the host cool-downs in the database, read once for all hosts.

One job: answer "is this host cooling down now?" before each poll without a
database read per poll.  `CooldownView` keeps a snapshot of every cool-down
in force (one read for all hosts, usually of no rows) and reads it again
when it is `refresh` seconds old, or at once after this process recorded a
poll that may have started one (any failed poll: `forget`).  So a
cool-down that another process starts is seen here within `refresh`
seconds, and one that this process's polls start before its next poll.
`ingest run` and the scheduler trust a snapshot for a second (`REFRESH`);
an `ingest worker`, one of several polling the same hosts, reads before
every poll (`refresh` 0).  An
unchanged poll in the running service used to spend about a third of its
CPU on that read (docs/performance.md).  It does not decide what cools a
host (politeness.py) nor store anything (store/hosts.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Final

__all__ = ["REFRESH", "CooldownView", "Cooldowns"]

Cooldowns = Mapping[str, tuple[datetime, str]]  # host -> (until, reason)

REFRESH: Final = 1.0  # seconds a snapshot of the cool-downs is trusted


class CooldownView:
    """The cool-downs in force as last read with `read(now)`; read again when stale.

    `refresh` 0 reads before every question.  Polls that ask together while
    the snapshot is stale share one read.
    """

    def __init__(
        self,
        read: Callable[[datetime], Awaitable[Cooldowns]],
        refresh: float = REFRESH,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read = read
        self._refresh = refresh
        self._monotonic = monotonic
        self._known: Cooldowns = {}
        self._read_at: float | None = None
        self._lock = asyncio.Lock()

    async def of(self, host: str, now: datetime) -> tuple[datetime, str] | None:
        """(until, reason) when `host` is cooling down at `now`, else None.

        A failed read raises (the caller decides what an unknown answer means)
        and leaves the snapshot stale, so the next question reads again.
        """
        if self._stale():
            async with self._lock:
                if self._stale():  # another poll may have read it while this one waited
                    started = self._monotonic()
                    self._known = dict(await self._read(now))
                    self._read_at = started
        found = self._known.get(host)
        return found if found is not None and found[0] > now else None

    def forget(self) -> None:
        """Read again before the next answer (a poll recorded here may have cooled a host)."""
        self._read_at = None

    def _stale(self) -> bool:
        return self._read_at is None or self._monotonic() - self._read_at >= self._refresh
