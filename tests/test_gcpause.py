"""runtime/gcpause.py and the console script (cli/entry.py): no cyclic collection while
`ingest run` starts up, and none lost; a closed standard output ends a command quietly.

The collector must be off from the start of `ingest run` until the polling
starts, back on (with the start-up's objects frozen) from there, and exactly
as it was once the command returns, so that a caller running commands
in-process (these tests) keeps its own collector.
"""

from __future__ import annotations

import gc
import subprocess
import sys
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli_helpers import write_sources
from feedserver import FeedServer
from ingest.cli.main import main
from ingest.runtime import gcpause

DATA = Path(__file__).parent / "data" / "feeds"


@pytest.fixture(autouse=True)
def collector_on() -> Iterator[None]:
    assert gc.isenabled()
    frozen = gc.get_freeze_count()
    yield
    assert gc.isenabled(), "a test left the collector off"
    assert gc.get_freeze_count() == frozen, "a test left objects frozen"


class Cycle:
    def __init__(self) -> None:
        self.me = self


def test_starting_pauses_until_settle_then_collects_again() -> None:
    with gcpause.starting():
        assert not gc.isenabled()
        early = Cycle()
        gone_early = weakref.ref(early)
        del early  # garbage made during start-up ...
        gcpause.settle()
        assert gc.isenabled() and gc.get_freeze_count() > 0
        late = Cycle()
        gone_late = weakref.ref(late)
        del late
        gc.collect()
        assert gone_late() is None  # ... the work's own garbage is collected as usual
        assert gone_early() is not None  # frozen while paused: kept until the end
    gc.collect()
    assert gone_early() is None  # unfrozen on leaving: nothing is lost for good


def test_settle_outside_start_up_does_nothing() -> None:
    gcpause.settle()  # the service, a test: no start-up to end
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_leaving_without_settling_turns_the_collector_back_on() -> None:
    with pytest.raises(RuntimeError), gcpause.starting():  # a bad sources.yaml, say
        raise RuntimeError("before any poll")
    gcpause.settle()  # and no stale pause is left behind for a later settle
    assert gc.get_freeze_count() == 0


def test_a_collector_someone_else_turned_off_is_left_off() -> None:
    gc.disable()
    try:
        with gcpause.starting():
            gcpause.settle()
            assert not gc.isenabled() and gc.get_freeze_count() == 0
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_ingest_run_starts_up_paused_and_polls_with_the_collector_on(
    feed_server: FeedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    feed_server.put("/blog.xml", (DATA / "wordpress-rss2.xml").read_bytes())
    sources = write_sources(
        tmp_path,
        f"sources:\n  - key: blog\n    name: Blog\n    url: {feed_server.url('/blog.xml')}\n",
    )
    seen: list[tuple[bool, bool]] = []
    real = gcpause.settle

    def spy() -> None:
        seen.append((gc.isenabled(), gc.get_freeze_count() > 0))
        real()
        seen.append((gc.isenabled(), gc.get_freeze_count() > 0))

    monkeypatch.setattr(gcpause, "settle", spy)
    db = f"sqlite:///{tmp_path / 'ingest.sqlite3'}"
    assert main(["run", "--sources", sources, "--db", db]) == 0
    # off while starting up, on and frozen once the polls began (the database
    # process settles in its own process, which this list does not see)
    assert seen == [(False, False), (True, True)]


def test_the_console_script_loads_and_starts_the_command_paused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import ingest.cli.main as cli_main
    from ingest.cli import entry

    seen: list[bool] = []

    def command() -> int:
        seen.append(gc.isenabled())
        return 3

    monkeypatch.setattr(cli_main, "main", command)
    assert entry.main() == 3  # the command's exit code, as the script exits with it
    assert seen == [False] and gc.isenabled()


def test_a_command_other_than_run_settles_as_soon_as_it_is_known(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sources = write_sources(
        tmp_path, "sources:\n  - key: a\n    name: A\n    url: http://127.0.0.1:1/a.xml\n"
    )
    with gcpause.starting():
        assert main(["check", "--sources", sources]) == 0
        assert gc.isenabled()  # `check` (and `serve`, `schedule`...) run with the collector on
    assert "no problems" in capsys.readouterr().out


def test_a_reader_that_stops_reading_ends_the_command_quietly(tmp_path: Path) -> None:
    """`ingest latest | head -1`: the console script exits 1 without a traceback when its
    standard output is closed before it is done writing."""
    db = f"sqlite:///{tmp_path / 'x.sqlite3'}"
    from ingest.store import Store

    with Store.open(db):
        pass  # an empty, migrated database: `ingest status` has something to read
    script = Path(sys.executable).parent / "ingest"
    proc = subprocess.Popen(
        [str(script), "status", "--db", db],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader is gone before the command writes
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 1
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
