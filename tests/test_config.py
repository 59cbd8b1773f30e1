"""Tests for ingest.config: sources.yaml -> Config, and every mistake at its line.

Most cases are files: tests/data/config/<case>.yaml with <case>.expected.json
beside it, holding either {"sources": [...]} (the fields to compare, per
source, in order) or {"problems": ["sources.yaml:LINE: text", ...]} (every
problem, in order; "text" must occur in the message).  Each case runs through
both YAML parsers, libyaml's and PyYAML's pure-Python one.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest import config
from ingest.config import Config, load_config, parse_config, parse_duration, parse_size, yaml_nodes
from ingest.config.values import _DURATION_UNITS
from ingest.errors import ConfigError, ConfigProblem
from ingest.model import Settings, Source

HERE = Path(__file__).parent
CASES = HERE / "data" / "config"
REPO_SOURCES = HERE.parent / "sources.yaml"
EXPECTED_RE = re.compile(r"sources\.yaml:(\d+): (.*)", re.DOTALL)


def _plain(value: Any) -> Any:
    """Tuples as lists, recursively, to compare with JSON."""
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def _problems(text: str, path: str = "sources.yaml") -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, path)
    return info.value.problems


LOADERS = ["libyaml", "python"] if hasattr(yaml_nodes, "_CLoader") else ["python"]


@pytest.fixture(params=LOADERS)
def loader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Run a test with libyaml's parser and again with PyYAML's pure-Python one."""
    if request.param == "python":
        monkeypatch.setattr(config, "_Loader", yaml_nodes._PyLoader)
    yield request.param


# --------------------------------------------------------------------------
# the file-driven cases


def _case_names() -> list[str]:
    return sorted(p.name.removesuffix(".yaml") for p in CASES.glob("*.yaml"))


def test_every_case_has_its_expectation() -> None:
    names = _case_names()
    assert len(names) >= 20
    for name in names:
        assert (CASES / f"{name}.expected.json").is_file(), name
    for expected in CASES.glob("*.expected.json"):
        assert (CASES / expected.name.replace(".expected.json", ".yaml")).is_file(), expected


@pytest.mark.parametrize("case", _case_names())
def test_case(case: str, loader: str) -> None:
    path = CASES / f"{case}.yaml"
    expected = json.loads((CASES / f"{case}.expected.json").read_text(encoding="utf-8"))

    if "problems" in expected:
        with pytest.raises(ConfigError) as info:
            load_config(path)
        actual = info.value.problems
        shown = "\n".join(str(p) for p in actual)
        assert len(actual) == len(expected["problems"]), shown
        for want, got in zip(expected["problems"], actual, strict=True):
            m = EXPECTED_RE.fullmatch(want)
            assert m is not None, f"bad expectation {want!r}"
            assert got.file == str(path)
            text = str(got).replace(str(path), "sources.yaml", 1)
            assert got.line == int(m.group(1)), f"{want!r} vs {text!r}"
            assert m.group(2) in text, f"{want!r} vs {text!r}"
        return

    cfg = load_config(path)
    assert cfg.path == str(path)
    assert len(cfg.sources) == len(expected["sources"])
    for want, source in zip(expected["sources"], cfg.sources, strict=True):
        for name, value in want.items():
            assert _plain(getattr(source, name)) == value, f"{source.key}.{name}"
    for name, value in expected.get("settings", {}).items():
        assert getattr(cfg.settings, name) == value, f"settings.{name}"
    for name, value in expected.get("site", {}).items():
        got = getattr(cfg.site, name)
        if name == "sections":  # PageSection values as [key, heading, limit, layout, summaries]
            got = [[p.key, p.heading, p.limit, p.layout, p.summaries] for p in got]
        assert _plain(got) == value, f"site.{name}"


# --------------------------------------------------------------------------
# durations and sizes


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30.0),
        ("30m", 1800.0),
        ("1h", 3600.0),
        ("2d", 172800.0),
        ("90", 90.0),
        (90, 90.0),
        (1.5, 1.5),
        ("1.5h", 5400.0),
        (".5m", 30.0),
        ("1h30m", 5400.0),
        ("1h 30m", 5400.0),
        ("30 minutes", 1800.0),
        ("1 day", 86400.0),
        (" 10S ", 10.0),
        ("0", 0.0),
    ],
)
def test_parse_duration(text: str | int | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text",
    ["", " ", "5x", "-5m", "m", "1:30", "1h30", "h1", "30m-", "1 h 30", "5ms", "1e3s", -1, True],
)
def test_parse_duration_refuses(text: Any) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -0.5, None, [1]])
def test_parse_duration_refuses_odd_values(value: Any) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)


@given(
    st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=10_000),
            st.sampled_from(sorted(_DURATION_UNITS)),
            st.sampled_from(["", " "]),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_parse_duration_adds_up_its_parts(parts: list[tuple[int, str, str]]) -> None:
    text = "".join(f"{n}{gap}{unit} " for n, unit, gap in parts)
    want = sum(n * _DURATION_UNITS[unit] for n, unit, _ in parts)
    assert parse_duration(text) == want


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("10MiB", 10 * 1024 * 1024),
        ("512KiB", 512 * 1024),
        ("10MB", 10_000_000),
        ("1kb", 1000),
        ("2 GiB", 2 * 1024**3),
        ("1.5MiB", 1_572_864),
        ("100B", 100),
        ("1048576", 1_048_576),
        (1_048_576, 1_048_576),
        ("0", 0),
    ],
)
def test_parse_size(text: str | int, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize(
    "text", ["", "MiB", "10 parsecs", "-1", "1.5", "1.5B", "10M", "10 MiB B", -1, True, 1.5, None]
)
def test_parse_size_refuses(text: Any) -> None:
    with pytest.raises(ValueError):
        parse_size(text)


# --------------------------------------------------------------------------
# defaults, and how the file maps to values


def test_defaults_are_inherited_and_overridden() -> None:
    cfg = parse_config(
        """\
defaults:
  every: 2h
  timeout: 5s
  max_body: 1MiB
  section: blogs
  enabled: false
  strip_params: [ref, rss]
sources:
  - key: inherits
    name: Inherits
    url: https://example.org/a
  - key: overrides
    name: Overrides
    url: https://example.org/b
    every: 10m
    timeout: 1m
    max_body: 2MB
    section: latest
    enabled: true
    strip_params: [rss, page]
  - key: cron-instead
    name: Cron
    url: https://example.org/c
    cron: "0 7 * * 1-5"
"""
    )
    inherits, overrides, cron = cfg.sources
    assert (inherits.every, inherits.cron, inherits.timeout, inherits.max_body) == (
        7200.0,
        None,
        5.0,
        1024 * 1024,
    )
    assert (inherits.section, inherits.enabled, inherits.strip_params) == (
        "blogs",
        False,
        ("ref", "rss"),
    )
    assert (overrides.every, overrides.timeout, overrides.max_body) == (600.0, 60.0, 2_000_000)
    assert (overrides.section, overrides.enabled) == ("latest", True)
    # the defaults' parameters come first; one named twice is kept once
    assert overrides.strip_params == ("ref", "rss", "page")
    assert cron.cron == "0 7 * * 1-5"
    assert cfg.enabled() == (overrides,)


def test_a_source_every_replaces_a_default_cron() -> None:
    cfg = parse_config(
        """\
defaults:
  cron: "30 6 * * *"
sources:
  - {key: a, name: A, url: "https://example.org/a"}
  - {key: b, name: B, url: "https://example.org/b", every: 15m}
"""
    )
    a, b = cfg.sources
    assert a.cron == "30 6 * * *"
    assert (b.cron, b.every) == (None, 900.0)


def test_without_defaults_the_model_defaults_apply() -> None:
    cfg = parse_config("sources:\n  - {key: a, name: A, url: 'https://example.org/a'}\n")
    assert cfg.sources == (Source(key="a", name="A", url="https://example.org/a", line=2),)
    assert cfg.settings == Settings()


def test_config_lookups() -> None:
    cfg = parse_config(
        """\
sources:
  - {key: on-1, name: One, url: "https://example.org/1"}
  - {key: off-2, name: Two, url: "https://example.org/2", enabled: false}
  - {key: on-3, name: Three, url: "https://example.org/3"}
"""
    )
    assert [s.key for s in cfg.sources] == ["on-1", "off-2", "on-3"]
    assert [s.key for s in cfg.enabled()] == ["on-1", "on-3"]
    off = cfg.get("off-2")
    assert off is not None and off.name == "Two" and not off.enabled
    assert cfg.get("missing") is None
    assert sorted(cfg.by_key) == ["off-2", "on-1", "on-3"]
    with pytest.raises(TypeError):
        cfg.by_key["new"] = off  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.path = "other.yaml"  # type: ignore[misc]
    # built by hand (as other modules' tests do), the lookups work too
    made = Config("x.yaml", (off,))
    assert made.get("off-2") is off and made.settings == Settings()


# --------------------------------------------------------------------------
# problems


def test_four_mistakes_are_each_reported_at_their_own_line() -> None:
    problems = _problems(
        """\
sources:
  - key: fine
    name: Fine
    url: https://example.org/fine
  - key: second
    name: Second
    url: htps//example.org/feed
    every: 5x
  - key: third
    name: Third
    url: https://example.org/third
    enabled: "yes please"
    select:
      item: li
"""
    )
    assert [p.line for p in problems] == [7, 8, 12, 13]
    assert "url 'htps//example.org/feed'" in problems[0].message
    assert "every: '5x' is not a duration" in problems[1].message
    assert "enabled must be true or false" in problems[2].message
    assert "'select' is only for pages" in problems[3].message


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0s", "websub_verify_timeout must be longer than zero, not '0s'"),
        ("10", "websub_verify_timeout: '10' has no unit; write a number and a unit"),
        ("soon", "websub_verify_timeout: 'soon' is not a duration; use a number and a unit"),
        ("-5m", "websub_verify_timeout: '-5m' is not a duration"),
        ("2h", "websub_verify_timeout must be at most an hour (1h), not '2h'"),
        ("[10m]", "websub_verify_timeout must be a single value, not a list"),
    ],
)
def test_websub_verify_timeout_is_a_duration_up_to_an_hour(value: str, message: str) -> None:
    source = "sources:\n  - {key: a, name: A, url: 'https://example.org/a'}\n"
    (problem,) = _problems(f"settings:\n  websub_verify_timeout: {value}\n" + source)
    assert str(problem).startswith(f"sources.yaml:2: settings: {message}"), str(problem)


def test_websub_verify_timeout_defaults_to_ten_minutes() -> None:
    source = "sources:\n  - {key: a, name: A, url: 'https://example.org/a'}\n"
    assert parse_config(source).settings.websub_verify_timeout == 600.0
    written = parse_config("settings:\n  websub_verify_timeout: 1h\n" + source)
    assert written.settings.websub_verify_timeout == 3600.0


def test_error_text_lists_every_problem_as_file_line_message() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config("sources:\n  - key: A\n    name: x\n", "conf/sources.yaml")
    lines = str(info.value).splitlines()
    assert lines == [
        "conf/sources.yaml:2: key 'A' may only use lower-case letters, digits and '-' "
        "and must start with a letter or digit (e.g. bmj-leader)",
        "conf/sources.yaml:2: source 'A' has no 'url' (required)",
    ]
    assert info.value.kind == "config"


def test_a_problem_in_a_shared_anchor_is_reported_once() -> None:
    problems = _problems(
        """\
sources:
  - &base {key: a, name: A, url: "https://example.org/a", evry: 1h}
  - {<<: *base, key: b}
  - {<<: *base, key: c}
"""
    )
    assert [str(p) for p in problems] == [
        "sources.yaml:2: unknown field 'evry'; did you mean 'every'?"
    ]


def test_missing_file_is_a_config_error_at_line_0(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(missing)
    (problem,) = info.value.problems
    assert (problem.file, problem.line) == (str(missing), 0)
    assert "file not found" in problem.message


def test_a_directory_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert info.value.problems[0].line == 0
    assert "directory" in info.value.problems[0].message


def test_not_utf8_is_reported_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "sources.yaml"
    path.write_bytes(b"sources:\n  - key: a\n    name: caf\xe9\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (problem,) = info.value.problems
    assert problem.line == 3
    assert "not UTF-8" in problem.message


def test_utf8_with_bom_and_a_str_path(tmp_path: Path) -> None:
    path = tmp_path / "sources.yaml"
    text = "sources:\n  - {key: a, name: Café, url: 'https://example.org/a'}\n"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    cfg = load_config(str(path))
    assert cfg.path == str(path)
    assert cfg.sources[0].name == "Café"


def test_control_character_is_a_syntax_error_at_its_line(loader: str) -> None:
    (problem,) = _problems("sources:\n  - key: a\n    name: \x07\n")
    assert problem.line == 3
    assert "YAML syntax error" in problem.message


def test_absurd_nesting_is_refused_not_crashed(loader: str) -> None:
    (problem,) = _problems("sources: " + "[" * 5000 + "]" * 5000)
    assert problem.line == 1
    assert "YAML syntax error" in problem.message


def test_collector_state_is_restored() -> None:
    good = "sources:\n  - {key: a, name: A, url: 'https://example.org/a'}\n"
    assert gc.isenabled()
    parse_config(good)
    assert gc.isenabled()
    _problems("sources: [")
    assert gc.isenabled()
    gc.disable()
    try:
        parse_config(good)
        assert not gc.isenabled()
    finally:
        gc.enable()


# --------------------------------------------------------------------------
# the real file, speed, imports


def test_the_repo_sources_yaml_loads(loader: str) -> None:
    cfg = load_config(REPO_SOURCES)
    keys = {s.key for s in cfg.sources}
    assert {
        "bmj-leader-current",
        "bmj-leader-online-first",
        "bmj-research",
        "nhs-england-blog",
        "ted-talks",
        "nhs-leadership-academy",
        "kings-fund-blogs",
    } <= keys
    urls = {s.url for s in cfg.sources}
    assert "https://bmjleader.bmj.com/rss/current.xml" in urls
    assert "https://bmjleader.bmj.com/rss/ahead.xml" in urls
    # every list on the collection page is fed by at least one enabled source
    sections = {s.section for s in cfg.enabled()}
    assert sections == {"latest", "blogs", "videos", "highlighted"}
    # the file's defaults are in force
    assert all(s.timeout == 20.0 for s in cfg.sources)
    online_first = cfg.get("bmj-leader-online-first")
    assert online_first is not None and online_first.every == 1800.0
    assert "rss" in online_first.strip_params


def _many_sources(n: int) -> str:
    out = ["defaults:\n  every: 30m\n  timeout: 20s\n  strip_params: [rss]\nsources:\n"]
    for i in range(n):
        out.append(
            f"  - key: source-{i}\n"
            f"    name: Source number {i}\n"
            f"    url: https://host{i % 50}.example.org/feeds/{i}.xml\n"
            f"    section: {('latest', 'blogs', 'videos')[i % 3]}\n"
            f"    every: {i % 5 + 1}h\n"
            f"    enabled: {'false' if i % 7 == 0 else 'true'}\n"
            f"    include: [leadership, nhs]\n"
        )
    return "".join(out)


def test_two_thousand_sources_load_with_their_lines_and_defaults() -> None:
    """A big file loads whole (its speed is benchmarks/bench_config.py's to measure)."""
    cfg = parse_config(_many_sources(2000))
    assert len(cfg.sources) == 2000
    last = cfg.sources[-1]
    assert (last.key, last.line, last.every, last.strip_params) == (
        "source-1999",
        6 + 1999 * 7,
        5 * 3600.0,
        ("rss",),
    )
    assert len(cfg.enabled()) == 2000 - len(range(0, 2000, 7))


def test_importing_config_loads_no_heavy_library() -> None:
    script = """
import sys
import ingest.config as c
heavy = ("apscheduler", "httpx", "sqlalchemy", "soupsieve", "bs4", "feedparser")
src = "sources:\\n  - {key: a, name: A, url: 'https://example.org/a', %s}\\n"
c.parse_config(src % "every: 1h")
print(sorted(m for m in heavy if m in sys.modules))
c.parse_config(src % "cron: '0 7 * * *'")
print("apscheduler" in sys.modules)
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout.split("\n")
    assert out[0] == "[]"
    assert out[1] == "True"  # cron is really checked with apscheduler, when needed
