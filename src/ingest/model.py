"""The frozen values that flow between the pipeline's stages.

Each dataclass is named after the stage that makes it: config makes `Source`,
fetch makes `Fetched`, parse makes `RawEntry`, normalize makes `Item`, dedupe
makes `Plan`, the pipeline makes `SourceReport`.  Nothing here does I/O or
holds behaviour beyond small derived properties (and `utcnow`, the default
`Clock` every stage and service is given); stages copy with
`dataclasses.replace`, never mutate.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from typing import Any, Literal, NotRequired, TypedDict

__all__ = [
    "DEFAULT_MAX_BODY",
    "DEFAULT_MAX_EVERY",
    "DEFAULT_MIN_EVERY",
    "DEFAULT_PUSH_EVERY",
    "DEFAULT_TIMEOUT",
    "LISTED_EPOCH",
    "STORY_FIELDS",
    "Advert",
    "Arrivals",
    "Clock",
    "CuratedItem",
    "DateSource",
    "DateZone",
    "FailureRule",
    "FetchState",
    "Fetched",
    "Identity",
    "Item",
    "ItemKind",
    "MediaKind",
    "NextPoll",
    "Plan",
    "PollRecord",
    "RawEntry",
    "Rule",
    "RuleField",
    "Settings",
    "Source",
    "SourceReport",
    "Story",
    "story_lags",
    "utcnow",
]

DEFAULT_TIMEOUT = 20.0
DEFAULT_MAX_BODY = 10 * 1024 * 1024
DEFAULT_MIN_EVERY = 600.0  # `every: auto` polls at most every 10 minutes...
DEFAULT_MAX_EVERY = 86400.0  # ...and at least once a day, unless min_every/max_every say
DEFAULT_PUSH_EVERY = 6 * 3600.0  # a source its WebSub hub pushes is still polled this often
LISTED_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # undated curated items: this minus their place

SourceKind = Literal["feed", "page", "curated"]
# "listed": an undated item of a curated source, dated LISTED_EPOCH minus its place in
# the file (seconds): the editors' order, below every dated story (normalize.py)
DateSource = Literal["published", "updated", "first_seen", "listed"]
MediaKind = Literal["video", "audio"]
DateZone = Literal["none", "utc", "offset"]
Identity = Literal["guid", "link", "title", "content"]
Clock = Callable[[], datetime]  # what "now" is: injected, so tests can move time


def utcnow() -> datetime:
    """The default `Clock`: now, aware, in UTC."""
    return datetime.now(UTC)


ItemKind = Literal["article", "video", "audio"]


@dataclass(frozen=True, slots=True)
class CuratedItem:
    """One story an editor wrote under a `kind: curated` source (validated)."""

    title: str
    url: str
    summary: str | None = None  # plain text
    image: str | None = None
    date: datetime | None = None  # aware UTC
    line: int = 0  # where the item starts in its file, for messages


RuleField = Literal["title", "link", "summary", "author"]


@dataclass(frozen=True, slots=True)
class Rule:
    """One keep or drop rule of an editor (`rules:`): regular expressions on a story's fields.

    A story matches when every (field, pattern) pair finds its pattern in that
    field (Python `re`, searched, case-insensitive).  `scope` says where it was
    written: "defaults" (every source) or "source".
    """

    action: Literal["keep", "drop"]
    patterns: tuple[tuple[RuleField, str], ...]
    scope: Literal["defaults", "source"] = "source"

    def __str__(self) -> str:
        where = " (defaults)" if self.scope == "defaults" else ""
        return f"{self.action} " + " ".join(f"{f}={p!r}" for f, p in self.patterns) + where


@dataclass(frozen=True, slots=True)
class Source:
    """One entry of sources.yaml, validated, with the defaults applied."""

    key: str
    name: str
    url: str
    kind: SourceKind = "feed"
    section: str = "latest"
    every: float = 1800.0  # seconds between polls; ignored when `cron` is set or `auto`
    cron: str | None = None
    auto: bool = False  # `every: auto`: the interval follows the entries' cadence (policy.py)
    min_every: float = DEFAULT_MIN_EVERY  # bounds of the `every: auto` interval, seconds
    max_every: float = DEFAULT_MAX_EVERY
    enabled: bool = True
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    strip_params: tuple[str, ...] = ()
    select: tuple[tuple[str, str], ...] = ()  # kind: page only; (field, selector) pairs
    date_format: str | None = None  # kind: page only; strptime format tried first
    day_first: bool = True  # kind: page only; 03/04/2026 is 3 April
    max_age: float | None = None  # seconds; stories published longer ago are skipped
    items: tuple[CuratedItem, ...] = ()  # kind: curated only; the stories themselves
    timeout: float = DEFAULT_TIMEOUT  # seconds for the whole request
    max_body: int = DEFAULT_MAX_BODY  # bytes, counted after decompression
    # (name, value) pairs sent with the source's requests; values may hold ${NAME}
    # references to the environment (envrefs.py), kept as written: never a secret itself
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    proxy: str | None = field(default=None, repr=False)  # http:// or socks5:// URL; ${NAME} ok
    timezone: str | None = None  # IANA zone for the source's dates written without an offset
    date_offset_fix: bool = False  # dates labelled UTC are really local time in `timezone`
    identity: Identity | None = None  # what names an entry (normalize.py); None: guid, link, hash
    rules: tuple[Rule, ...] = ()  # keep/drop rules: `defaults:` ones first, then the source's
    line: int = 0  # where the source starts in its file, for messages


@dataclass(frozen=True, slots=True)
class Settings:
    """Process-wide fetch settings (the `settings:` block of sources.yaml)."""

    concurrency: int = 64  # requests in flight across all hosts
    per_host: int = 8  # requests in flight to one host
    per_host_delay: float = 0.0  # least seconds between two polls' requests to one host
    host_delays: tuple[tuple[str, float], ...] = ()  # (host or domain, seconds) overrides
    host_failures: int = 5  # failed polls in a row (across a host's sources) that cool it; 0: off
    host_failure_cooldown: float = 60.0  # the first such cool-down, seconds (doubles, <= 1 h)
    max_redirects: int = 5
    user_agent: str = "ingest/0.1 (+https://github.com/ingest-news/ingest)"
    # the unattended service (service/scheduler.py, stages/policy.py)
    backoff_max: float = 6 * 3600.0  # longest wait between polls of a failing source, seconds
    jitter: float = 0.1  # each wait is stretched or shrunk by up to this fraction
    respect_max_age: bool = True  # a server's Cache-Control: max-age is a lower bound on waits
    retention: float = 365 * 86400.0  # stories published longer ago are pruned, seconds
    history: float = 30 * 86400.0  # poll log (fetches) rows older than this are pruned
    # hostile sources (netguard.py, bounds.py, docs/security.md)
    allow_networks: tuple[str, ...] = ()  # CIDRs the network guard lets through (`defaults:`)
    max_entries: int = 1000  # entries kept from one document, the newest
    parse_cpu: float = 20.0  # CPU seconds one document's parse may take
    parse_memory: int = 512 * 1024 * 1024  # bytes one parse may add to its worker
    # WebSub (websub.py, docs/deploying.md): the public base URL that reaches `ingest serve`;
    # None: nothing subscribes.  `push_every`: how often a pushed source is still polled;
    # `websub_verify_timeout`: how long a hub has to verify a request before it is failed
    websub_callback: str | None = None
    push_every: float = DEFAULT_PUSH_EVERY
    websub_verify_timeout: float = 600.0


@dataclass(frozen=True, slots=True)
class FetchState:
    """What earlier polls of a source left behind for the next one.

    The validators and body hash come from the last successful fetch of the
    source's current URL; `failures` counts the failed polls since.
    """

    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None  # sha256 hex of the last body we parsed
    failures: int = 0  # consecutive failed polls before this one (for backoff)
    discovered_url: str | None = None  # the feed an HTML page at the source's URL pointed to
    pushed: bool = False  # a WebSub hub pushes this source (an active subscription)


@dataclass(frozen=True, slots=True)
class Fetched:
    """The outcome of one HTTP poll that got an answer we can use.

    `not_modified` is a 304; `unchanged` is a 200 whose body hashes the same
    as the last one.  In both cases `content` is empty and nothing is parsed.
    A `kind: curated` source is "fetched" without a request (status 0): its
    body hash is the hash of the items an editor wrote.
    """

    source_key: str
    url: str  # the URL we asked for
    final_url: str  # after redirects: the base for relative links
    status: int  # HTTP status; 0 when no request was made (kind: curated)
    content: bytes = b""
    content_type: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None
    not_modified: bool = False
    unchanged: bool = False
    elapsed_ms: int = 0
    moved_to: str | None = None  # target of a 301/308 on the first hop
    retry_after: float | None = None  # seconds the server asked us to wait
    max_age: float | None = None  # Cache-Control: max-age, seconds
    discovered_url: str | None = None  # `url` is the feed an HTML page at the source's URL named
    link: str | None = None  # the answer's HTTP `Link` header(s), joined with ", "

    @property
    def needs_parse(self) -> bool:
        return not (self.not_modified or self.unchanged)

    @property
    def state(self) -> FetchState:
        return FetchState(self.etag, self.last_modified, self.body_hash, 0, self.discovered_url)


@dataclass(frozen=True, slots=True)
class RawEntry:
    """One entry as the document carries it, before any cleaning.

    Dates are timezone-aware UTC datetimes when the document had a parseable
    one.  `images` lists candidate image URLs in order of preference
    (media:thumbnail, media:content, itunes:image, image enclosures); `base`
    is the xml:base in force for the summary (else for the entry) and
    `content_base` the one in force for the content, when they differ from
    the document's URL.  Talks and podcasts carry
    `media_url` (their video or audio file), `media_kind` and `duration`
    (whole seconds).
    """

    id: str | None = None
    link: str | None = None
    title: str | None = None
    summary: str | None = None
    content: str | None = None
    published: datetime | None = None
    updated: datetime | None = None
    author: str | None = None
    base: str | None = None
    content_base: str | None = None
    images: tuple[str, ...] = ()
    duration: int | None = None  # seconds
    media_url: str | None = None
    media_kind: MediaKind | None = None
    # how the document wrote each date's zone (dates.zone_label): "none" (no offset: the
    # date above is its wall time read as UTC), "utc" (Z, +00:00, GMT) or "offset" (any other)
    published_zone: DateZone = "offset"
    updated_zone: DateZone = "offset"


@dataclass(frozen=True, slots=True)
class Item:
    """One story from one source, cleaned and identified, ready to store."""

    source_key: str
    entry_key: str  # identity within the source: guid, else canonical link, else hash
    canonical_url: str  # identity across sources
    url: str  # the link as published, minus tracking parameters
    title: str
    summary: str  # sanitized HTML
    published_at: datetime  # UTC
    date_source: DateSource
    section: str = "latest"
    author: str | None = None
    image_url: str | None = None
    content_hash: str = ""  # changes when what readers see changes
    kind: ItemKind = "article"
    duration: int | None = None  # seconds, for videos and audio
    media_url: str | None = None  # the video or audio itself (a file, or an embeddable player)
    is_short: bool = False  # a YouTube Short
    content: str | None = None  # the full text (sanitized HTML) when the entry carries one
    # the canonical URL with the link's fragment, when `canonical_url` dropped one: a story
    # another source keyed with that fragment is this one (docs/database.md)
    fragment_url: str | None = None

    def __reduce__(self) -> tuple[type[Item], tuple[Any, ...]]:
        # Items cross two process boundaries in a run (parse worker -> parent ->
        # database process); pickling them as constructor arguments takes half the
        # time of the frozen-dataclass default, which calls fields() per object.
        return Item, _item_values(self)


_item_values = operator.attrgetter(*(f.name for f in fields(Item)))


@dataclass(frozen=True, slots=True)
class Plan:
    """What dedupe decided for one source's batch against what is stored."""

    new: tuple[Item, ...] = ()
    changed: tuple[Item, ...] = ()
    same: int = 0
    duplicates_in_batch: int = 0
    stories: int = 0  # of `new`, the stories the database did not have (set by the store)


@dataclass(frozen=True, slots=True)
class SourceReport:
    """What one poll of one source came to; a failed poll carries `error`."""

    source_key: str
    ok: bool
    status: int | None = None
    new: int = 0  # entries new to this source
    updated: int = 0
    same: int = 0
    entries: int = 0
    stories: int = 0  # stories new to the database (a story another source had is not)
    not_modified: bool = False
    unchanged: bool = False
    elapsed_ms: int = 0
    error: str | None = None
    error_kind: str | None = None
    moved_to: str | None = None
    retry_after: float | None = None
    max_age: float | None = None  # Cache-Control: max-age of the answer
    skipped: bool = False  # not polled: another process holds the source's lease
    discovered_url: str | None = None  # polled through the feed an HTML page at its URL named
    notes: tuple[str, ...] = field(default=())  # e.g. why the filters kept no entry
    # seconds from publication to `seen_at` of each new story with a trustworthy date
    # (date_source "published"): the freshness that metrics.py observes
    lags: tuple[float, ...] = field(default=())
    # the WebSub hub and topic a parsed body advertised (parse/hubs.py); None: none, or
    # no body was read (`read_body`), in which case what was recorded before stands
    advert: Advert | None = None
    read_body: bool = False  # a body was parsed: `advert` replaces the recorded one

    def with_counts(
        self, plan: Plan, entries: int, seen_at: datetime | None = None
    ) -> SourceReport:
        """This report with what storing its `entries` came to (`plan`, from dedupe);
        with `seen_at` (when they were first stored), the new stories' lags too."""
        lags = () if seen_at is None else story_lags(plan.new, seen_at)
        return replace(
            self, new=len(plan.new), updated=len(plan.changed), same=plan.same, entries=entries,
            stories=plan.stories, lags=lags,
        )  # fmt: skip


def story_lags(new: Sequence[Item], seen_at: datetime) -> tuple[float, ...]:
    """Seconds between publication and `seen_at` of the stories whose date is their own."""
    return tuple(
        max(0.0, (seen_at - i.published_at).total_seconds())
        for i in new
        if i.date_source == "published"
    )


@dataclass(frozen=True, slots=True)
class Advert:
    """A feed's WebSub advertisement: the hub to subscribe at and its topic (`rel="self"`)."""

    hub: str
    topic: str


@dataclass(frozen=True, slots=True)
class Arrivals:
    """When a source's entries arrived, which `every: auto` reads (policy.adaptive_interval).

    An entry arrives when it was published, or when ingest first stored it if
    that is earlier (a date in the future, or none).  `times` are those within
    the policy's window, oldest first; `since` is the oldest arrival ever
    recorded (None: the source has none yet), which tells how long the
    source has been watched.
    """

    times: tuple[datetime, ...] = ()
    since: datetime | None = None


@dataclass(frozen=True, slots=True)
class NextPoll:
    """When a source is polled next, as policy.plan_next decided after a poll."""

    due_at: datetime
    retry_after_until: datetime | None = None  # the server asked us not to come back before
    disabled_reason: str | None = None  # set when the source must not be polled again
    backoff: float = 0.0  # seconds of wait added because the source is failing
    interval: float = 0.0  # the source's regular interval at this poll (every, cron or auto)


@dataclass(frozen=True, slots=True)
class FailureRule:
    """When failed polls cool their whole host down (`settings: host_failures` and
    `host_failure_cooldown`; politeness.failure_cooldown applies it)."""

    after: int = 5  # failed polls in a row, across the host's sources; 0: never
    cooldown: float = 60.0  # seconds of the first cool-down; each next one in a row doubles


@dataclass(frozen=True, slots=True)
class PollRecord:
    """One finished poll, as the pipeline hands it to the store to record (with the rule
    by which the store counts it against its host).  `host` is the server the poll
    asked, or would have asked: a feed found on a page is fetched from its own
    address, not the page's (`politeness.record_host` reads it)."""

    source: Source
    report: SourceReport
    fetched: Fetched | None  # None when nothing usable came back
    started_at: datetime
    next: NextPoll
    failure_rule: FailureRule = FailureRule()
    host: str = ""  # "": the source's own URL's host


class Story(TypedDict):
    """A stored story as the store reads it back: one definition for every reader.

    `store.reads` selects these columns (in this order, `STORY_FIELDS`), and
    `ingest latest`, /api/items, the page, the feeds and the export show them.
    It lives here, not in `ingest.store`, so that the command line can name a
    story's fields without importing the database stack.  `sources` lists
    every source that carried the story, the first to carry it first;
    `score` is there only when searching, and `block` only in a search on SQLite
    (the highest id of the block of matches its rank was taken in: the search cursor
    carries it).
    """

    id: int
    url: str
    title: str
    summary: str
    published_at: datetime
    first_seen_at: datetime
    updated_at: datetime
    section: str
    source: str
    source_name: str | None
    sources: list[str]
    image_url: str | None
    author: str | None
    date_source: DateSource
    canonical_url: str
    kind: ItemKind
    duration: int | None
    media_url: str | None
    is_short: bool
    content: str | None
    score: NotRequired[float]
    block: NotRequired[int | None]


# a story's public fields, in the order `ingest latest --format json` and /api/items give them
STORY_FIELDS: tuple[str, ...] = tuple(
    k for k in Story.__annotations__ if k not in ("score", "block")
)
