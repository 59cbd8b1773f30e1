"""What a newcomer meets first: the `ingest run` progress bar on a terminal, read-only
commands that refuse a database they did not find, and the messages of the run.

The progress bar is read from a real pseudo-terminal (`pty.fork`) running the installed
`ingest` command; the read commands run against a SQLite path that does not exist and a
fresh, empty PostgreSQL database (`pg_url`), and the test checks afterwards that nothing
was created there.
"""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from cli_helpers import write_sources
from ingest.cli import main

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
@pytest.mark.parametrize("command", ["latest", "status", "health", "export"])
def test_read_commands_refuse_an_empty_postgres_database(
    command: str, pg_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sqlalchemy import create_engine, inspect

    argv = [command, "--db", pg_url]
    if command == "export":
        argv += ["--out", str(tmp_path / "out")]
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
