"""model.py: the values that cross stages and processes keep every field when pickled."""

from __future__ import annotations

import copy
import pickle
from dataclasses import fields
from datetime import UTC, datetime

import pytest

from ingest.model import Item

FULL = Item(
    source_key="s", entry_key="id:1", canonical_url="https://a.example/1",
    url="https://a.example/1?x=1", title="T", summary="<p>S</p>",
    published_at=datetime(2026, 6, 1, 8, tzinfo=UTC), date_source="published",
    section="videos", author="A", image_url="https://a.example/i.jpg", content_hash="h",
    kind="video", duration=334, media_url="https://a.example/v.mp4", is_short=True,
)  # fmt: skip
BARE = Item("s", "id:2", "https://a.example/2", "https://a.example/2", "T", "",
            datetime(2026, 6, 1, tzinfo=UTC), "fetched")  # fmt: skip


@pytest.mark.parametrize("item", [FULL, BARE], ids=["every field set", "defaults"])
def test_an_item_survives_pickling_and_copying_field_for_field(item: Item) -> None:
    for protocol in range(2, pickle.HIGHEST_PROTOCOL + 1):
        back = pickle.loads(pickle.dumps(item, protocol=protocol))
        assert back == item
        assert [getattr(back, f.name) for f in fields(Item)] == [
            getattr(item, f.name) for f in fields(Item)
        ]
    assert copy.deepcopy(item) == item and copy.copy(item) == item
    assert all(f.name != "__dict__" for f in fields(Item))  # still slotted and frozen
    with pytest.raises(AttributeError):
        item.title = "changed"  # type: ignore[misc]
