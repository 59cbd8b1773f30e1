"""SQLite's one-step datetime binding (`UTCDateTime.bind_processor`) writes exactly the
text of the two steps it replaces: `process_bind_param`, then SQLAlchemy's DATETIME."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import DateTime
from sqlalchemy.dialects import postgresql, sqlite

from ingest.store.schema import UTCDateTime

SQLITE = sqlite.dialect()


def two_steps(value: datetime | None) -> str | None:
    bound = UTCDateTime().process_bind_param(value, SQLITE)
    text = DateTime(timezone=True).dialect_impl(SQLITE).bind_processor(SQLITE)(bound)
    return None if text is None else str(text)


one_step = UTCDateTime().dialect_impl(SQLITE).bind_processor(SQLITE)

zones = st.one_of(
    st.none(),
    st.just(UTC),
    st.integers(min_value=-23 * 60 + 1, max_value=23 * 60 - 1).map(
        lambda m: timezone(timedelta(minutes=m))
    ),
)


@given(st.datetimes(min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31), timezones=zones))
def test_one_step_writes_what_the_two_steps_wrote(value: datetime) -> None:
    assert one_step is not None
    assert one_step(value) == two_steps(value)


def test_the_edges() -> None:
    assert one_step is not None
    assert one_step(None) is None
    assert one_step(datetime(2026, 1, 2, 3, 4, 5)) == "2026-01-02 03:04:05.000000"
    east = datetime(2026, 1, 2, 1, 0, tzinfo=timezone(timedelta(hours=5)))
    assert one_step(east) == "2026-01-01 20:00:00.000000" == two_steps(east)


def test_other_databases_bind_as_inherited() -> None:
    pg = postgresql.dialect()
    process = UTCDateTime().dialect_impl(pg).bind_processor(pg)
    east = datetime(2026, 1, 2, 1, 0, tzinfo=timezone(timedelta(hours=5)))
    bound = east if process is None else process(east)
    assert bound == east and bound.tzinfo is not None  # timestamptz takes the aware value
