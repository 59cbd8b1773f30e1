"""config/watch.py: reload on change, keep the last good configuration."""

from __future__ import annotations

import os
from pathlib import Path

from ingest.config.watch import ConfigWatcher


def source(key: str, url: str = "https://example.org/feed") -> str:
    return f"  - key: {key}\n    name: {key}\n    url: {url}\n"


def write(path: Path, text: str, bump: int) -> None:
    path.write_text(text)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + bump * 1_000_000_000))


def test_reports_nothing_until_the_file_changes_then_what_changed(tmp_path: Path) -> None:
    path = tmp_path / "sources.yaml"
    write(path, "sources:\n" + source("a") + source("b"), 0)
    watch = ConfigWatcher(path)
    assert [s.key for s in watch.config.sources] == ["a", "b"]
    assert watch.check() is None

    write(path, "sources:\n" + source("a", "https://example.org/moved") + source("c"), 1)
    result = watch.check()
    assert result is not None and result.error is None
    assert (result.added, result.removed, result.changed) == (("c",), ("b",), ("a",))
    assert watch.config is result.config
    assert watch.check() is None


def test_an_invalid_edit_keeps_the_last_good_configuration(tmp_path: Path) -> None:
    path = tmp_path / "sources.yaml"
    write(path, "sources:\n" + source("a"), 0)
    watch = ConfigWatcher(path)
    good = watch.config

    write(path, "sources:\n  - key: Bad Key\n", 1)
    refused = watch.check()
    assert refused is not None and refused.error is not None
    assert refused.config is good and watch.config is good
    assert any(p.line == 2 for p in refused.error.problems)

    path.unlink()  # a deleted file is refused too
    gone = watch.check()
    assert gone is not None and gone.error is not None and watch.config is good

    write(path, "sources:\n" + source("a") + source("d"), 2)
    fixed = watch.check()
    assert fixed is not None and fixed.error is None and fixed.added == ("d",)
