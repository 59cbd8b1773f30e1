"""Edit the editors' sources.yaml from the command line, keeping every other byte as it is.

One job: the text of a sources file with one more source block appended to its
`sources:` list (`ingest add`, `ingest opml import`), or with one source's
`enabled` set to false (`ingest disable`), and writing it back only once the
new text passes the same validation as `ingest check` (`write_checked`):
nothing is written when it does not.  Comments, blank lines, quoting and flow
styles elsewhere in the file are untouched, because the edit is made at the
lines PyYAML's node tree locates (`yaml.compose` keeps each node's start and
end), not by dumping a re-serialized document: a round-trip dumper such as
ruamel.yaml re-spaces flow mappings (`{ a: 1 }` becomes `{a: 1}`), which
would make an editor's diff noisy.  It fetches nothing and decides nothing
about what to add (the command line does).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from ingest.config import Config, parse_config
from ingest.errors import IngestError

__all__ = ["EditError", "append_source", "disable_source", "scalar", "write_checked"]


class EditError(IngestError):
    """The file cannot be edited this way (no block `sources:` list, no such source)."""

    kind = "config"


_PLAIN = re.compile(r"[A-Za-z0-9(][^\n]*")
_SPECIAL = (": ", " #", "\t")


def scalar(text: str) -> str:
    """`text` as a YAML value: plain where that reads back the same, else double-quoted."""
    plain = (
        _PLAIN.fullmatch(text) is not None
        and text == text.strip()
        and not any(s in text for s in _SPECIAL)
        and not text.endswith(":")
    )
    return text if plain else json.dumps(text, ensure_ascii=False)


def _sources_list(text: str) -> SequenceNode:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        raise EditError(f"the file is not valid YAML: {e}") from e
    if isinstance(root, MappingNode):
        for key, value in root.value:
            if isinstance(key, ScalarNode) and key.value == "sources":
                if isinstance(value, SequenceNode) and value.flow_style is False and value.value:
                    return value
                break
    raise EditError("the file has no block 'sources:' list (one '- key:' per source) to edit")


def _end_line(node: Node) -> int:
    """The index of the first line after everything `node` holds."""
    mark = node.end_mark
    return int(mark.line) if mark.column == 0 else int(mark.line) + 1


def _deep_end(node: Node) -> int:
    """Like `_end_line`, for the last line with content of `node` (a block mapping's own
    end mark lies after the blank and comment lines that follow it)."""
    if isinstance(node, MappingNode | SequenceNode) and node.value:
        last = node.value[-1]
        return _deep_end(last[1] if isinstance(last, tuple) else last)
    return _end_line(node)


def append_source(text: str, fields: Sequence[tuple[str, str]], comment: str = "") -> str:
    """`text` with a source block of `fields` (name, YAML value text) added after the last
    source, indented like the others, with `comment` as comment lines after its second
    field (the file's own blocks say key, name, then why)."""
    items = _sources_list(text)
    first = items.value[0]
    column = int(first.start_mark.column)  # of the first key of an item ("key:")
    dash = " " * max(column - 2, 0) + "- "
    pad = " " * column
    block = [f"{dash}{fields[0][0]}: {fields[0][1]}"]
    block += [f"{pad}{name}: {value}" for name, value in fields[1:2]]  # key, name, then
    block += [f"{pad}# {line}" for line in comment.splitlines()]  # the comment, as the
    block += [f"{pad}{name}: {value}" for name, value in fields[2:]]  # file's own blocks
    lines = text.splitlines(keepends=True)
    at = _deep_end(items.value[-1])
    if at > len(lines):
        at = len(lines)
    if lines and not lines[-1].endswith("\n") and at == len(lines):
        lines[-1] += "\n"
    lines[at:at] = ["\n", *(line + "\n" for line in block)]
    return "".join(lines)


def _item(items: SequenceNode, key: str) -> MappingNode:
    for item in items.value:
        if not isinstance(item, MappingNode):
            continue
        for k, v in item.value:
            if isinstance(k, ScalarNode) and k.value == "key" and getattr(v, "value", None) == key:
                return item
    raise EditError(f"no source named {key}")


def disable_source(text: str, key: str) -> str | None:
    """`text` with source `key` set to `enabled: false`; None when it already is."""
    item = _item(_sources_list(text), key)
    lines = text.splitlines(keepends=True)
    for k, v in item.value:
        if isinstance(k, ScalarNode) and k.value == "enabled":
            if isinstance(v, ScalarNode) and v.value.strip().lower() in ("false", "no", "off"):
                return None
            if not isinstance(v, ScalarNode) or v.start_mark.line != v.end_mark.line:
                raise EditError(f"source {key}: 'enabled' is not a single value to change")
            row = lines[v.start_mark.line]
            lines[v.start_mark.line] = (
                row[: v.start_mark.column] + "false" + row[v.end_mark.column :]
            )
            return "".join(lines)
    # no `enabled:` yet: a line of its own after the key's, at the item's indentation
    key_value = next(v for k, v in item.value if isinstance(k, ScalarNode) and k.value == "key")
    at = _end_line(key_value)
    lines[at:at] = [" " * int(item.start_mark.column) + "enabled: false\n"]
    return "".join(lines)


def write_checked(path: str | os.PathLike[str], text: str) -> Config:
    """Validate `text` as sources.yaml would be (`ConfigError` listing every problem,
    nothing written), then replace the file with it in one step (a temporary file renamed
    over it, with the old file's permissions)."""
    name = os.fspath(path)
    config = parse_config(text, name)
    target = Path(name)
    fd, temp = tempfile.mkstemp(prefix=".sources-", suffix=".yaml", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
            out.write(text)
        if target.exists():
            os.chmod(temp, target.stat().st_mode & 0o7777)
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return config
