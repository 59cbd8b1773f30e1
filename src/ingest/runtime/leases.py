"""Who holds a source's lease, and for how long: owner ids, their liveness, the TTL.

One job: the naming and timing rules of leases (a poll holds its source's
lease in the database so that two processes never poll it at once).  An owner
is `role@host:pid:suffix`; on the same host a pid that is gone is a dead
owner whose leases may be taken over.  It does not take, release or store
leases: that is `ingest.store` (`acquire_leases`, `release_leases`),
called by `ingest.runtime.pipeline`.
"""

from __future__ import annotations

import os
import socket
import uuid

from ingest.model import Source

__all__ = ["lease_ttl", "make_owner", "owner_is_dead"]


def make_owner(role: str = "run") -> str:
    """A lease owner id: host, pid and a random suffix (pids are reused)."""
    return f"{role}@{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def owner_is_dead(owner: str) -> bool:
    """Whether a lease owner (`make_owner`) is a process of this host that has exited."""
    _, _, where = owner.partition("@")
    host = where.rpartition(":")[0]  # "host:pid", without the random suffix
    host, _, pid_text = host.rpartition(":")
    if host != socket.gethostname() or not pid_text.isdigit() or int(pid_text) == os.getpid():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except OSError:  # exists, another user's
        return False
    return False


def lease_ttl(source: Source) -> float:
    """How long a poll of `source` may hold its lease: fetch deadline plus parse and write."""
    return source.timeout * 2 + 120.0
