"""Watching sources.yaml for edits: reload on change, keep the last good configuration.

One job: tell a long-running process (the scheduler, the dispatcher) whether
the file changed since it last looked and what it now says.  A refused edit
leaves the last good `Config` in force and the problems in `Reload.error`.
It does not log, schedule or touch the database.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ingest.config import Config, load_config
from ingest.errors import ConfigError

__all__ = ["ConfigWatcher", "Reload"]


@dataclass(frozen=True, slots=True)
class Reload:
    """What one check of an edited file came to."""

    config: Config  # the configuration in force after the check
    error: ConfigError | None = None  # the edit was refused; `config` is the last good one
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()


class ConfigWatcher:
    """sources.yaml as last loaded, and whether the file changed since (size or mtime)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = str(path)
        self._stamp = self._file_stamp()  # before reading: an edit in between is seen later
        self.config: Config = load_config(self.path)  # invalid at start: ConfigError

    def check(self) -> Reload | None:
        """None when the file is as last seen; else reload it (or keep the last good one)."""
        stamp = self._file_stamp()
        if stamp == self._stamp:
            return None
        self._stamp = stamp
        try:
            config = load_config(self.path)
        except ConfigError as e:
            return Reload(self.config, error=e)
        before, after = self.config.by_key, config.by_key
        self.config = config
        return Reload(
            config,
            added=tuple(sorted(after.keys() - before.keys())),
            removed=tuple(sorted(before.keys() - after.keys())),
            changed=tuple(sorted(k for k in after.keys() & before.keys() if after[k] != before[k])),
        )

    def _file_stamp(self) -> tuple[int, int] | None:
        try:
            st = Path(self.path).stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)
