"""What a newcomer meets first: the `ingest run` progress bar on a terminal, read-only
commands that refuse a database they did not find, and the messages of the run.

The progress bar is read from a real pseudo-terminal (`pty.fork`) running the installed
`ingest` command; the read commands run against a SQLite path that does not exist and a
fresh, empty PostgreSQL database (`pg_url`), and the test checks afterwards that nothing
was created there.
"""

from __future__ import annotations

import json
import os
import pty
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cli_helpers import write_sources
from feedserver import FeedServer
from ingest.cli.main import main
from ingest.store import Store

INGEST = Path(sys.executable).parent / "ingest"

CURATED = """\
sources:
  - key: picks
    name: Picks
    kind: curated
    section: highlighted
    items:
      - title: One
        url: https://example.org/one
      - title: Two
        url: https://example.org/two
"""


def _under_pty(argv: list[str], cwd: Path) -> bytes:
    """Everything `argv` wrote to its terminal (stdout and stderr are the pty)."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: becomes the command
        os.chdir(cwd)
        os.execv(argv[0], argv)
    out = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    os.close(fd)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, out.decode(errors="replace")
    return out


def test_the_progress_bar_on_a_terminal_shows_no_markup(tmp_path: Path) -> None:
    sources = write_sources(tmp_path, CURATED)
    db = f"sqlite:///{tmp_path / 'x.db'}"
    out = _under_pty([str(INGEST), "run", "--sources", sources, "--db", db], tmp_path)
    text = out.decode()
    assert "polling" in text  # the bar was drawn (a terminal)
    assert "ok    picks" in text
    assert "[progress" not in text and "[/" not in text, text


# -- read commands never create a database --------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["latest"],
        ["status"],
        ["health"],
        ["export", "--out", "OUT"],
        ["serve", "--port", "0"],
    ],
    ids=lambda a: a[0],
)
def test_read_commands_refuse_a_missing_sqlite_database(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    where = tmp_path / "nonexistent" / "dir"
    db = f"sqlite:///{where / 'x.db'}"
    argv = [a.replace("OUT", str(tmp_path / "out")) for a in argv]
    assert main([*argv, "--db", db]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert "no database at" in err and "ingest run" in err
    assert not where.exists() and not (tmp_path / "nonexistent").exists()
    assert not (tmp_path / "out").exists()


@pytest.mark.postgres
@pytest.mark.parametrize("command", ["latest", "status", "health", "export", "serve"])
def test_read_commands_refuse_an_empty_postgres_database(
    command: str, pg_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sqlalchemy import create_engine, inspect

    argv = [command, "--db", pg_url]
    if command == "export":
        argv += ["--out", str(tmp_path / "out")]
    if command == "serve":
        argv += ["--port", "0", "--sources", str(tmp_path / "none.yaml")]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert "has no ingest tables" in err
    engine = create_engine(pg_url)
    try:
        with engine.connect() as conn:
            found = inspect(conn)
            assert found.get_table_names() == [] and found.get_view_names() == []
    finally:
        engine.dispose()


def test_a_postgres_url_is_read_as_psycopg(capsys: pytest.CaptureFixture[str]) -> None:
    # postgres:// is what hosting providers and libpq write; SQLAlchemy alone does not
    # know it, and postgresql:// alone would ask for psycopg2, which is not installed
    for scheme in ("postgres", "postgresql"):
        assert main(["latest", "--db", f"{scheme}://nobody@127.0.0.1:1/none"]) == 1
        err = capsys.readouterr().err
        assert err.startswith("ingest: cannot open the database postgresql+psycopg://"), err
        assert len(err.strip().splitlines()) == 1, err


@pytest.mark.postgres
def test_a_postgres_url_reaches_the_server(
    pg_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sources = write_sources(tmp_path, CURATED)
    plain = pg_url.replace("postgresql+psycopg://", "postgres://")
    assert main(["run", "--sources", sources, "--db", plain]) == 0
    capsys.readouterr()
    assert main(["latest", "--db", plain]) == 0
    assert "Two" in capsys.readouterr().out


def test_read_commands_work_once_run_has_created_the_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sources = write_sources(tmp_path, CURATED)
    db = f"sqlite:///{tmp_path / 'new' / 'x.db'}"
    assert main(["run", "--sources", sources, "--db", db]) == 0  # run may create it
    capsys.readouterr()
    assert main(["latest", "--db", db]) == 0
    assert "One" in capsys.readouterr().out


def test_the_installed_command_says_it_in_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(INGEST), "latest", "--db", f"sqlite:///{tmp_path / 'nope.db'}"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and "no database at" in done.stderr
    assert not (tmp_path / "nope.db").exists()


# -- the run's summary tells the truth ------------------------------------------------

FEEDS = Path(__file__).parent / "data" / "feeds"


def _block(key: str, url: str) -> str:
    return f"  - key: {key}\n    name: Source {key}\n    url: {url}\n"


def test_a_story_two_sources_carry_is_counted_once(
    feed_server: FeedServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = (FEEDS / "wordpress-rss2.xml").read_bytes()
    feed_server.put("/a.xml", body)
    feed_server.put("/b.xml", body)  # the same stories under a second address
    sources = write_sources(
        tmp_path, "sources:\n" + _block("a", feed_server.url("/a.xml"))
        + _block("b", feed_server.url("/b.xml")),
    )  # fmt: skip
    db = f"sqlite:///{tmp_path / 'x.db'}"
    assert main(["run", "--sources", sources, "--db", db]) == 0
    out = capsys.readouterr().out
    with Store.open_existing(db) as store:
        stored = store.story_count()
    assert stored == 3
    lines = out.splitlines()
    assert lines[-1].startswith(f"2 sources: 2 ok, 0 failed; {stored} new stories, 0 updated;")
    assert main(["run", "--sources", sources, "--db", db, "--format", "json"]) == 0
    polls = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sum(p["stories"] for p in polls) == 0


def test_sources_another_process_holds_are_counted_as_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sources = write_sources(tmp_path, CURATED)
    db = f"sqlite:///{tmp_path / 'x.db'}"
    assert main(["run", "--sources", sources, "--db", db]) == 0
    with Store.open_existing(db) as store:  # a live process on another host holds it
        taken = store.acquire_leases(["picks"], "run@elsewhere:1:abcdef", datetime.now(UTC), 600)
    assert taken == {"picks"}
    capsys.readouterr()
    assert main(["run", "--sources", sources, "--db", db]) == 0
    out = capsys.readouterr().out
    assert "skip  picks" in out
    assert out.splitlines()[-1].startswith("1 source: 0 ok, 0 failed, 1 skipped; 0 new stories")


def test_a_feed_whose_entries_are_all_too_old_says_so(
    feed_server: FeedServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    feed_server.put("/old.xml", (FEEDS / "wordpress-rss2.xml").read_bytes())  # early 2026
    feed_server.put("/old2.xml", (FEEDS / "wordpress-rss2.xml").read_bytes())
    sources = write_sources(
        tmp_path,
        "settings:\n  retention: 30d\nsources:\n" + _block("old", feed_server.url("/old.xml"))
        + _block("picky", feed_server.url("/old2.xml")) + "    include: [zebra]\n",
    )  # fmt: skip
    db = f"sqlite:///{tmp_path / 'x.db'}"
    assert main(["run", "--sources", sources, "--db", db]) == 0
    lines = {line.split()[1]: line for line in capsys.readouterr().out.splitlines()[:-1]}
    assert "3 entries, all older than the 30-day retention" in lines["old"], lines
    assert "0 entries" not in lines["old"]
    assert "3 entries, none kept" not in lines["picky"]
    assert "3 entries, all older than the 30-day retention" in lines["picky"]


def test_a_feed_the_filters_empty_says_so(
    feed_server: FeedServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    feed_server.put("/f.xml", (FEEDS / "wordpress-rss2.xml").read_bytes())
    sources = write_sources(
        tmp_path, "sources:\n" + _block("f", feed_server.url("/f.xml")) + "    include: [zebra]\n"
    )
    db = f"sqlite:///{tmp_path / 'x.db'}"
    assert main(["run", "--sources", sources, "--db", db]) == 0
    line = capsys.readouterr().out.splitlines()[0]
    assert "3 entries, all dropped by include/exclude" in line, line


# -- ingest status at 100 columns -----------------------------------------------------


def test_status_fits_100_columns_and_says_gone(
    feed_server: FeedServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    feed_server.put("/ok.xml", (FEEDS / "wordpress-rss2.xml").read_bytes())
    feed_server.error("/gone.xml", 410, "gone")
    feed_server.error("/broken.xml", 500, "x" * 300)
    sources = write_sources(
        tmp_path,
        "sources:\n"
        + _block("a-source-with-a-rather-long-key", feed_server.url("/ok.xml"))
        + _block("gone", feed_server.url("/gone.xml"))
        + _block("broken", feed_server.url("/broken.xml")),
    )
    db = f"sqlite:///{tmp_path / 'x.db'}"
    assert main(["run", "--sources", sources, "--db", db]) == 1
    capsys.readouterr()
    assert main(["status", "--db", db]) == 0  # into a pipe: 100 columns
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert all(len(line) <= 100 for line in lines), out
    rows = {line.split()[0]: line for line in lines if line and not line.startswith(" ")}
    assert set(rows) == {"source", "a-source-with-a-rather-long-key", "gone", "broken"}
    assert "disabled (gone)" in rows["gone"]
    assert " - " in rows["gone"] and "in 3650d" not in out  # no due date years ahead
    assert "ok" in rows["a-source-with-a-rather-long-key"].split()
    assert "failing (1x)" in rows["broken"]
    assert "ago" in rows["a-source-with-a-rather-long-key"]
    # the broken source's error is cut in its row and given in full under it
    assert rows["broken"].endswith("\u2026")
    assert main(["status", "--db", db, "--format", "json"]) == 0
    error = next(r for r in json.loads(capsys.readouterr().out) if r["key"] == "broken")
    under = lines[lines.index(rows["broken"]) + 1 :]
    full = " ".join(line.strip() for line in under if line.startswith("    "))
    assert full.startswith(error["last_error"])

    assert main(["status", "--db", db, "--wide"]) == 0  # everything, as before
    wide = capsys.readouterr().out
    assert "backoff" in wide and "last attempt" in wide and "DISABLED (gone" in wide


def test_latest_shows_each_story_link(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sources = write_sources(tmp_path, CURATED)
    db = f"sqlite:///{tmp_path / 'x.db'}"
    assert main(["run", "--sources", sources, "--db", db]) == 0
    capsys.readouterr()
    assert main(["latest", "--db", db]) == 0
    out = capsys.readouterr().out
    assert "link" in out.splitlines()[0] and "https://example.org/one" in out


def test_export_refuses_limit_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sources = write_sources(tmp_path, CURATED)
    db = f"sqlite:///{tmp_path / 'x.db'}"
    assert main(["run", "--sources", sources, "--db", db]) == 0
    capsys.readouterr()
    assert main(["export", "--db", db, "--out", str(tmp_path / "out"), "--limit", "0"]) == 2
    assert "--limit must be at least 1" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", ["run", "try", "latest", "status", "health", "export"])
def test_every_format_and_limit_option_is_explained(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for option in ("--format", "--limit"):
        if option in text:
            after = text.split(option, 2)[-1]  # the option's line in the list of options
            assert not after.lstrip().startswith(("--", "-h")), (option, text)


def test_the_poll_log_of_a_curated_source_has_no_status_none(tmp_path: Path) -> None:
    sources = write_sources(tmp_path, CURATED)
    db = f"sqlite:///{tmp_path / 'x.db'}"
    done = subprocess.run(
        [str(INGEST), "run", "-v", "--sources", sources, "--db", db],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "picks new=2 updated=0 entries=2" in done.stderr, done.stderr
    assert "status=None" not in done.stderr


ROOT = Path(__file__).resolve().parents[1]


def test_make_run_prints_the_latest_of_the_database_it_was_given(tmp_path: Path) -> None:
    make = shutil.which("make")
    if make is None or not (ROOT / ".venv" / ".installed-stamp").is_file():
        pytest.skip("needs `make` and the project's .venv (make .venv/.installed-stamp)")
    sources = write_sources(tmp_path, CURATED)
    db = f"sqlite:///{tmp_path / 'mine.db'}"
    done = subprocess.run(
        [make, "-s", "-C", str(ROOT), "run", f"ARGS=--sources {sources} --db {db}"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "https://example.org/one" in done.stdout and "https://example.org/two" in done.stdout
    assert "no database at" not in done.stderr


UNTITLED_RSS = """<?xml version="1.0"?>
<rss version="2.0"><channel><title>T</title><link>https://example.org/</link>
<item><title>A story</title><link>https://example.org/a</link></item>
<item><link>https://example.org/b</link></item>
<item><link>https://example.org/c</link><description>  </description></item>
</channel></rss>
"""


def test_try_says_which_entries_have_no_title(
    feed_server: FeedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    feed_server.put("/u.xml", UNTITLED_RSS, "application/rss+xml")
    assert main(["try", feed_server.url("/u.xml")]) == 0
    out = capsys.readouterr().out
    assert "1 entry: 1 would be stored" in out
    assert "2 entries have neither a title nor any text and would be left out" in out
    assert main(["try", feed_server.url("/u.xml"), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["untitled"] == 2
