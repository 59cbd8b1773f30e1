"""The `ingest` command run in-process for tests that read its JSON back.

One job: what several end-to-end tests (tests/test_curated.py, test_kinds.py,
test_discover.py, test_trial.py) do around `ingest.cli.main`: write a sources file into
tmp_path (as given, or with FeedServer's max-age ignored), and run `ingest latest` or
`ingest status` with ``--format json`` and return what it printed, parsed. Output
printed before the call is discarded first.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ingest.cli.main import main


def write_sources(tmp_path: Path, text: str) -> str:
    """`text` as tmp_path/sources.yaml (replacing any earlier one); its path."""
    path = tmp_path / "sources.yaml"
    path.write_text(text)
    return str(path)


def quick_sources(tmp_path: Path, body: str) -> str:
    """`body` (source entries) under ``sources:``, with the max-age of FeedServer's
    answers ignored (``respect_max_age: false``), as tmp_path/sources.yaml; its path."""
    return write_sources(tmp_path, "settings:\n  respect_max_age: false\nsources:\n" + body)


def latest_json(
    db: str, capsys: pytest.CaptureFixture[str], *args: str, limit: int = 100
) -> list[dict[str, Any]]:
    """`ingest latest --format json` (up to `limit` stories, `args` added), parsed."""
    capsys.readouterr()
    assert main(["latest", "--db", db, "--limit", str(limit), "--format", "json", *args]) == 0
    rows: list[dict[str, Any]] = json.loads(capsys.readouterr().out)
    return rows


def status_json(db: str, capsys: pytest.CaptureFixture[str]) -> dict[str, dict[str, Any]]:
    """`ingest status --format json`, parsed: each source's row by its key."""
    capsys.readouterr()
    assert main(["status", "--db", db, "--format", "json"]) == 0
    return {r["key"]: r for r in json.loads(capsys.readouterr().out)}
