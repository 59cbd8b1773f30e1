"""A `Source` or `Settings` as JSON text and back, for the database (`sources.config`, `settings`).

One job: what `ingest worker` needs to poll a source without sources.yaml.
`source_json` writes the validated `Source` (tuples as lists, dates as ISO
8601, the file's line numbers left out so that moving a source in the file
is no change); `source_from_json` rebuilds an equal `Source`.  The same for
`Settings`.  It does not validate (config/ did, before the JSON was written)
and does not touch the database.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from datetime import datetime
from typing import Any

from ingest.model import CuratedItem, Rule, Settings, Source

__all__ = ["settings_from_json", "settings_json", "source_from_json", "source_json"]


def _default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON: {type(value).__name__}")


def source_json(source: Source) -> str:
    """The source as JSON text, without its line numbers (sorted keys: stable text).

    The text `dataclasses.asdict` gives, without its deep copy of every value (a
    run writes every source's text at start-up, on its critical path)."""
    return json.dumps(_plain(source), sort_keys=True, default=_default, separators=(",", ":"))


def _plain(value: Any) -> Any:
    """`value` as `dataclasses.asdict` would give it, `line` left out; a tuple becomes a list,
    which `json.dumps` writes as it writes a tuple."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {name: _plain(getattr(value, name)) for name in _fields(type(value))}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    return value


@functools.cache
def _fields(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls) if f.name != "line")


def source_from_json(text: str) -> Source:
    """The `Source` that `source_json` wrote."""
    data: dict[str, Any] = json.loads(text)
    for name in ("include", "exclude", "strip_params"):
        data[name] = tuple(data.get(name, ()))
    data["select"] = tuple((str(a), str(b)) for a, b in data.get("select", ()))
    data["headers"] = tuple((str(a), str(b)) for a, b in data.get("headers", ()))
    data["rules"] = tuple(
        Rule(r["action"], tuple((f, p) for f, p in r["patterns"]), r.get("scope", "source"))
        for r in data.get("rules", ())
    )
    data["items"] = tuple(_curated(i) for i in data.get("items", ()))
    known = {f.name for f in dataclasses.fields(Source)}
    return Source(**{k: v for k, v in data.items() if k in known})


def _curated(data: dict[str, Any]) -> CuratedItem:
    date = data.get("date")
    known = {f.name for f in dataclasses.fields(CuratedItem)}
    values = {k: v for k, v in data.items() if k in known}
    values["date"] = datetime.fromisoformat(date) if date else None
    return CuratedItem(**values)


def settings_json(settings: Settings) -> str:
    """The settings as JSON text."""
    return json.dumps(dataclasses.asdict(settings), sort_keys=True, separators=(",", ":"))


def settings_from_json(text: str) -> Settings:
    """The `Settings` that `settings_json` wrote (fields unknown to this version are ignored)."""
    data: dict[str, Any] = json.loads(text)
    known = {f.name for f in dataclasses.fields(Settings)}
    values = {k: v for k, v in data.items() if k in known}
    if "allow_networks" in values:
        values["allow_networks"] = tuple(values["allow_networks"])
    if "host_delays" in values:
        values["host_delays"] = tuple((str(h), float(d)) for h, d in values["host_delays"])
    return Settings(**values)
