"""Tests of ingest.stages.decoding.BodyDecoder: Content-Encoding undone in bounded steps.

Pure unit tests over bytes (the fetcher's use over real HTTP is in tests/test_fetch.py and
tests/test_hostile_run.py): every coding and pair of codings round-trips whatever the
chunking, no piece handed back is over `STEP` bytes, the cap stops a bomb at once, and
corrupt or over-coded bodies are `FetchError`s.
"""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Callable

import pytest

from ingest import errors
from ingest.stages.decoding import STEP, BodyDecoder

BODY = os.urandom(20_000) + b"<rss>" + b"a" * 500_000 + b"</rss>"


def raw_deflate(data: bytes) -> bytes:
    c = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return c.compress(data) + c.flush()


CODERS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "x-gzip": gzip.compress,
    "deflate": zlib.compress,
    "identity": lambda b: b,
}


def decode(header: str | None, raw: bytes, cap: int = 10**8, chunk: int = 4096) -> list[bytes]:
    d = BodyDecoder(header, cap, "http://a.example/")
    pieces: list[bytes] = []
    for i in range(0, len(raw), chunk):
        pieces.extend(d.feed(raw[i : i + chunk]))
    pieces.extend(d.finish())
    return pieces


@pytest.mark.parametrize("chunk", [1, 1000, 1 << 20])
@pytest.mark.parametrize("first", sorted(CODERS))
@pytest.mark.parametrize("second", [None, *sorted(CODERS)])
def test_codings_round_trip_in_bounded_pieces(first: str, second: str | None, chunk: int) -> None:
    raw = CODERS[first](BODY)
    header = first
    if second is not None:
        raw, header = CODERS[second](raw), f"{first}, {second}"
    pieces = decode(header, raw, chunk=chunk)
    assert b"".join(pieces) == BODY
    plain = first == "identity" and second in (None, "identity")  # raw chunks pass as they are
    assert max(map(len, pieces)) <= (chunk if plain else STEP)


def test_raw_deflate_and_gzip_members_and_padding() -> None:
    assert b"".join(decode("deflate", raw_deflate(BODY))) == BODY
    members = gzip.compress(b"one ") + gzip.compress(b"two") + b"\0" * 10
    assert b"".join(decode("gzip", members, chunk=7)) == b"one two"


def test_the_cap_stops_the_body_and_every_layer_between() -> None:
    assert b"".join(decode("gzip", gzip.compress(BODY), cap=len(BODY))) == BODY
    with pytest.raises(errors.TooLargeError, match=f"passed the {len(BODY) - 1}-byte cap"):
        decode("gzip", gzip.compress(BODY), cap=len(BODY) - 1)
    empties = gzip.compress(b"") * 10_000  # no body at all, but 200 KB in the middle layer
    with pytest.raises(errors.TooLargeError):
        decode("gzip, gzip", gzip.compress(empties), cap=100_000)


def test_a_bomb_costs_the_cap_not_its_size() -> None:
    bomb = gzip.compress(gzip.compress(bytes(512 << 20), compresslevel=1))
    d = BodyDecoder("gzip, gzip", 1 << 20)
    produced = 0
    with pytest.raises(errors.TooLargeError):
        for piece in d.feed(bomb):
            assert len(piece) <= STEP
            produced += len(piece)
    assert produced <= 1 << 20


def test_bad_input_is_a_fetch_error() -> None:
    with pytest.raises(errors.FetchError, match="at most 2 are accepted"):
        BodyDecoder("gzip, deflate, gzip", 100)
    with pytest.raises(errors.FetchError, match="not valid gzip data") as info:
        decode("gzip", b"not gzip at all")
    assert info.value.url == "http://a.example/"
    with pytest.raises(errors.FetchError, match="not valid deflate data"):
        decode("deflate", b"\xff" * 100)


def test_unknown_codings_pass_through_but_count() -> None:
    assert b"".join(decode("identity, br", b"as sent")) == b"as sent"
    with pytest.raises(errors.FetchError, match="3 codings"):
        BodyDecoder("br, gzip, gzip", 100)
