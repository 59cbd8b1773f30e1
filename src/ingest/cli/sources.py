"""`ingest add`, `ingest disable` and `ingest opml`: the editors' file from the command line.

One job: arguments in, printing out, for the commands that change
sources.yaml or read it as OPML.  `add` finds the feed as `ingest try` does
(a page's `<link rel="alternate">` included), shows what it would give, and
appends a commented source block; `disable` sets `enabled: false`; `opml
import` appends a block per new feed of a reader's export (no request made),
skipping those already there by canonical URL; `opml export` prints the
sources as OPML.  The edits themselves (every other byte of the file kept,
validated before writing) are `ingest.config.edit`'s; OPML is `ingest.config.opml`'s.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ingest.cli.exits import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from ingest.stages.controls import printable

__all__ = ["add", "add_parsers", "disable", "opml"]

_NOISE = frozenset({"feed", "feeds", "rss", "atom", "xml", "index", "en", "www"})


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add `add`, `disable` and `opml` to the subcommand parsers `sub`."""
    a = sub.add_parser(
        "add", parents=[common], help="find a site's feed, show it, and add it to the sources file"
    )
    a.add_argument("url", metavar="URL", help="a feed's address, or a page that names its feed")
    a.add_argument("--key", help="the source's key (default: made from the address)")
    a.add_argument("--name", help="the name readers see (default: the site's host)")
    a.add_argument("--section", default="latest", help="the list it feeds (latest)")
    a.add_argument(
        "--dry-run", action="store_true", help="show the block that would be added; write nothing"
    )
    d = sub.add_parser(
        "disable", parents=[common], help="set enabled: false on a source in the sources file"
    )
    d.add_argument("key", metavar="KEY", help="the source's key")
    o = sub.add_parser("opml", parents=[common], help="sources as OPML, or OPML into sources")
    osub = o.add_subparsers(dest="opml_command", required=True, metavar="ACTION")
    e = osub.add_parser("export", parents=[common], help="print the sources as OPML 2.0")
    e.add_argument("--out", type=Path, metavar="FILE", help="write to FILE instead")
    i = osub.add_parser(
        "import", parents=[common], help="add the feeds of a reader's OPML export (no requests)"
    )
    i.add_argument("file", type=Path, metavar="FILE", help="the OPML file")
    i.add_argument(
        "--section", help="put every new source in this section (default: by the OPML folder)"
    )
    i.add_argument("--dry-run", action="store_true", help="report what would be added only")


def _key_for(url: str, taken: set[str]) -> str:
    """A free key made from the address: host words, then the first telling path word."""
    from ingest.config.opml import section_key

    parts = urlsplit(url)
    host = (parts.hostname or "source").removeprefix("www.")
    words = [w for w in parts.path.split("/") if w and w.split(".")[0].lower() not in _NOISE]
    base = section_key(" ".join([host.replace(".", " "), *words[:1]])) or "source"
    key, n = base, 2
    while key in taken:
        key, n = f"{base}-{n}", n + 1
    return key


def _existing(config: Any) -> dict[str, str]:
    """canonical URL -> key of every configured source with an address."""
    from ingest.stages.urls import canonical_url

    out: dict[str, str] = {}
    for s in config.sources:
        if s.kind != "curated":
            out.setdefault(canonical_url(s.url), s.key)
    return out


# -- add ------------------------------------------------------------------------


def add(args: argparse.Namespace) -> int:
    import ingest.cli.format as cli_format
    from ingest.config import load_config
    from ingest.config.edit import append_source, scalar, write_checked
    from ingest.runtime.trial import run_trial, source_for_url
    from ingest.stages.urls import canonical_url

    config = load_config(args.sources)
    try:
        source = source_for_url(args.url)
    except ValueError as e:
        print(f"ingest add: {e}", file=sys.stderr)
        return EXIT_USAGE
    trial = run_trial(source, config.settings)
    if not trial.ok:
        status = f" HTTP {trial.status}" if trial.status else ""
        print(printable(f"FAIL  {args.url}{status}: {trial.error}"), file=sys.stderr)
        print(
            "nothing was added; for a page without a feed, find its selectors with "
            "`ingest try URL --select ...` and add the block by hand (docs/sources.md)",
            file=sys.stderr,
        )
        return EXIT_FAILED
    cli_format.print_trial(trial)
    url = trial.discovered_url or trial.moved_to or args.url
    known = _existing(config)
    if canonical_url(url) in known:
        print(
            f"ingest add: {url} is already in {args.sources} as {known[canonical_url(url)]}; "
            "nothing was added",
            file=sys.stderr,
        )
        return EXIT_FAILED
    key = args.key or _key_for(url, set(config.by_key))
    name = args.name or urlsplit(url).hostname or url
    found = len(trial.entries)
    comment = (
        f"added with `ingest add` on {datetime.now(UTC):%Y-%m-%d}: {found} "
        f"{'entry' if found == 1 else 'entries'} found"
        + (f" (the feed of {args.url})" if trial.discovered_url else "")
    )
    fields = [("key", scalar(key)), ("name", scalar(name)), ("url", scalar(url)),
              ("section", scalar(args.section))]  # fmt: skip
    path = Path(args.sources)
    text = append_source(path.read_text("utf-8"), fields, comment)
    if args.dry_run:
        config_after = _check_only(text, args.sources)
        print(f"\nwould add to {args.sources} (--dry-run: nothing written):\n")
        print(_block(text, key, config_after))
        return EXIT_OK
    write_checked(path, text)
    print(f"\nadded {key} to {args.sources} (section {args.section}); `ingest check` passes")
    return EXIT_OK


def _check_only(text: str, name: str) -> Any:
    from ingest.config import parse_config

    return parse_config(text, name)


def _block(text: str, key: str, config: Any) -> str:
    """The lines of the block of `key` in `text` (for --dry-run)."""
    line = config.by_key[key].line
    lines = text.splitlines()
    block = [lines[line - 1]]
    for rest in lines[line:]:
        if not rest.strip() or rest.lstrip().startswith("- "):
            break
        block.append(rest)
    return "\n".join(block)


# -- disable --------------------------------------------------------------------


def disable(args: argparse.Namespace) -> int:
    from ingest.config import load_config
    from ingest.config.edit import disable_source, write_checked

    load_config(args.sources)  # a file with mistakes is not edited (they are listed)
    path = Path(args.sources)
    text = disable_source(path.read_text("utf-8"), args.key)
    if text is None:
        print(f"{args.key} is already disabled in {args.sources}; nothing to do")
        return EXIT_OK
    write_checked(path, text)
    print(
        f"disabled {args.key} in {args.sources}: it is no longer polled; "
        "its stories stay in the database"
    )
    return EXIT_OK


# -- opml -------------------------------------------------------------------------


def opml(args: argparse.Namespace) -> int:
    return _opml_export(args) if args.opml_command == "export" else _opml_import(args)


def _opml_export(args: argparse.Namespace) -> int:
    from ingest.config import load_config
    from ingest.config.opml import write_opml

    document = write_opml(load_config(args.sources), datetime.now(UTC))
    if args.out:
        args.out.write_bytes(document)
        print(f"wrote {args.out}")
    else:
        sys.stdout.buffer.write(document)
        sys.stdout.flush()
    return EXIT_OK


def _opml_import(args: argparse.Namespace) -> int:
    from ingest.config import load_config
    from ingest.config.edit import append_source, scalar, write_checked
    from ingest.config.opml import read_opml, section_key
    from ingest.stages.urls import absolute_http_url, canonical_url

    config = load_config(args.sources)
    try:
        content = args.file.read_bytes()
    except OSError as e:
        print(f"ingest opml import: cannot read {args.file}: {e.strerror or e}", file=sys.stderr)
        return EXIT_USAGE
    feeds = read_opml(content)
    headings = {p.heading.lower(): p.key for p in config.site.sections}
    headings.update({p.key: p.key for p in config.site.sections})
    known = _existing(config)
    taken = set(config.by_key)
    path = Path(args.sources)
    text = path.read_text("utf-8")
    added: list[tuple[str, str, str]] = []
    duplicates: list[tuple[str, str]] = []
    refused: list[str] = []
    today = f"{datetime.now(UTC):%Y-%m-%d}"
    for feed in feeds:
        url = absolute_http_url(feed.url, feed.url)
        if url is None:
            refused.append(feed.url)
            continue
        canon = canonical_url(url)
        if canon in known:
            duplicates.append((url, known[canon]))
            continue
        folder = (feed.folder or "").strip()
        section = args.section or headings.get(folder.lower()) or section_key(folder) or "latest"
        key = _key_for(url, taken)
        taken.add(key)
        known[canon] = key
        fields = [("key", scalar(key)), ("name", scalar(feed.title)), ("url", scalar(url)),
                  ("section", scalar(section))]  # fmt: skip
        text = append_source(text, fields, f"imported from {args.file.name} on {today}")
        added.append((key, section, url))
    if added and not args.dry_run:
        write_checked(path, text)
    elif added:
        _check_only(text, args.sources)
    verb = "would add" if args.dry_run else "added"
    print(f"{args.file}: {len(feeds)} feeds; {verb} {len(added)} to {args.sources}, "
          f"skipped {len(duplicates)} already there, {len(refused)} not web addresses")  # fmt: skip
    for key, section, url in added:
        print(printable(f"  + {key} ({section}): {url}"))
    for url, key in duplicates:
        print(printable(f"  = {url}: already there as {key}"))
    for url in refused:
        print(printable(f"  - {url}: not an http(s) address"))
    return EXIT_OK
