"""The `<case>.expected.json` files of the file-driven parser tests, read and checked.

One job: what tests/test_parse.py (feeds) and tests/test_page.py (pages) share about
their expected files: reading one, the `Source` its ``source`` block describes, the
`Item`s as JSON (datetimes ISO 8601), and the comparison that, with
``INGEST_UPDATE_EXPECTED=1``, first writes what the code produced back into the file
(to be read by a person before it is committed: an expected file that mirrors a bug is
worthless).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from ingest.model import Item, Source

UPDATE = os.environ.get("INGEST_UPDATE_EXPECTED") == "1"


def load_expected(path: Path) -> dict[str, Any]:
    expected: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return expected


def source_from_spec(spec: dict[str, Any], url: str, **more: Any) -> Source:
    """The `Source` an expected file's ``source`` block describes (key, section,
    strip_params), at `url`, with `more` fields as given."""
    return Source(
        key=spec["key"],
        name=spec["key"],
        url=url,
        section=spec.get("section", "latest"),
        strip_params=tuple(spec.get("strip_params", ())),
        **more,
    )


def item_json(item: Item) -> dict[str, Any]:
    return {
        k: v.isoformat() if isinstance(v, datetime) else v
        for k, v in dataclasses.asdict(item).items()
    }


def assert_items(expected_path: Path, expected: dict[str, Any], items: Iterable[Item]) -> None:
    """The items, as JSON, are the file's ``items`` (rewritten first under UPDATE)."""
    got = [item_json(i) for i in items]
    if UPDATE:
        expected["items"] = got
        text = json.dumps(expected, indent=2, ensure_ascii=False) + "\n"
        expected_path.write_text(text, encoding="utf-8")
    assert got == expected["items"]
