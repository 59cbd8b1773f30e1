"""Tests of ingest.stages.controls: control characters out of stored Items, escaped when printed.

Pure unit tests; the end-to-end cases (a JSON Feed with NUL, ESC, BEL and C1 characters,
stored on SQLite and PostgreSQL and printed by `ingest latest` and `ingest try`) are in
tests/test_hostile_run.py, and normalize's use in tests/test_normalize.py.
"""

from __future__ import annotations

import logging
import re
from dataclasses import fields, replace
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest import errors
from ingest.cli.logs import TextFormatter
from ingest.model import Item, Source
from ingest.runtime.reports import failure_report
from ingest.stages.controls import printable, strip_controls, without_controls

CLEAN = Item(
    source_key="s",
    entry_key="id:1",
    canonical_url="https://a.example/1",
    url="https://a.example/1",
    title="Café – naïve ✓",
    summary="<p>one\ttwo\nthree</p>",
    published_at=datetime(2026, 1, 1, tzinfo=UTC),
    date_source="published",
)


def test_a_clean_item_is_returned_as_it_is() -> None:
    assert without_controls(CLEAN) is CLEAN


def test_text_keeps_tab_and_newline_urls_keep_nothing() -> None:
    dirty = replace(
        CLEAN,
        title="a\tb\nc\x00\x1b\x7f",
        url="https://a.example/\t\n\x001",
        image_url="https://a.example/\ri.png",
        author="\x07Ann",
    )
    item = without_controls(dirty)
    assert item.title == "a\tb\nc"
    assert item.url == "https://a.example/1"
    assert item.image_url == "https://a.example/i.png"
    assert item.author == "Ann"
    assert item.summary == CLEAN.summary and item.published_at == CLEAN.published_at


_TEXT_FIELDS = ("title", "summary", "author", "content", "fragment_url", "section", "entry_key")
_URL_FIELDS = ("canonical_url", "url", "image_url", "media_url")


def one_by_one(item: Item) -> Item:
    """`without_controls` field by field, as it was before its two-search shortcut."""
    changes = {}
    for name in (f.name for f in fields(Item)):
        value = getattr(item, name)
        if isinstance(value, str):
            pattern = r"[\x00-\x1f\x7f]" if name in _URL_FIELDS else r"[\x00-\x08\x0b-\x1f\x7f]"
            if re.search(pattern, value):
                changes[name] = re.sub(pattern, "", value)
    return replace(item, **changes) if changes else item


texts = st.text(st.sampled_from(["a", "é", " ", "\t", "\n", "\r", "\x00", "\x1b", "\x7f", "\x85"]),
                max_size=6)  # fmt: skip


@given(st.dictionaries(st.sampled_from(_TEXT_FIELDS + _URL_FIELDS), texts, max_size=4))
def test_without_controls_cleans_as_field_by_field(values: dict[str, str]) -> None:
    item = replace(CLEAN, **values)
    cleaned = without_controls(item)
    assert cleaned == one_by_one(item)
    if cleaned == item:
        assert cleaned is item  # nothing to remove: the same object


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("plain – text ✓", "plain – text ✓"),
        ("\x1b]0;owned\x07", "\\x1b]0;owned\\x07"),
        ("a\x00b\x7fc\x9bd\x85e", "a\\x00b\\x7fc\\x9bd\\x85e"),
        ("line\nbreak\ttab\r", "line\\x0abreak\\x09tab\\x0d"),
    ],
)
def test_printable_escapes_every_control_character(text: str, shown: str) -> None:
    assert printable(text) == shown


def test_printable_can_keep_line_breaks() -> None:
    assert printable("one\ntwo\t\x1b", lines=True) == "one\ntwo\\x09\\x1b"


def test_text_log_lines_show_control_characters_as_escapes() -> None:
    record = logging.LogRecord(
        "ingest.poll",
        logging.ERROR,
        __file__,
        1,
        "FAIL %s: %s",
        ("src", "bad\x1b]0;x\x07\nnext"),
        None,
    )
    assert TextFormatter("%(message)s").format(record) == "FAIL src: bad\\x1b]0;x\\x07\nnext"


def test_a_failed_polls_message_is_stored_without_controls() -> None:
    assert strip_controls("a\x00b\tc\nd\x1b\x7f") == "ab\tc\nd"
    source = Source(key="s", name="S", url="https://a.example/")
    report = failure_report(
        source, errors.ParseError("unexpected X while parsing: \x00\x1b[2J"), None
    )
    assert report.error == "unexpected X while parsing: [2J"


def test_the_quick_look_finds_exactly_the_patterns_characters() -> None:
    from ingest.stages import controls

    singles = [*range(0x800), 0xD800, 0xDFFF, 0xFFFD, 0x1F600, 0x10FFFF]
    for point in singles:
        text = f"a{chr(point)}b"
        for pattern, table in (
            (controls._URL_CONTROL, controls._URL_CONTROL_BYTES),
            (controls._TEXT_CONTROL, controls._TEXT_CONTROL_BYTES),
        ):
            assert controls._free_of(text, table) == (pattern.search(text) is None), hex(point)
