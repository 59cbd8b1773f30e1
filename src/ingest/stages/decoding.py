"""Undo a response's Content-Encoding in bounded steps, stopping at the body cap.

One job: `BodyDecoder` turns the raw bytes of a response, as they arrive,
into the body, through at most `MAX_CODINGS` layers of gzip or deflate
(zlib from the standard library), and raises `TooLargeError` the moment the
body, or any layer between, passes the cap.  Every call into zlib asks for
at most `STEP` bytes of output, so a bomb of any depth never holds more than
the cap plus a few steps in memory, and the work between two pieces handed
back is bounded: the caller (`fetch.py`) yields to the event loop after each
piece, so the poll's deadline can fire in the middle of a bomb.

It does no I/O and knows nothing of HTTP beyond the header's value.
Unknown codings are passed through as they are (as httpx does), but still
count towards the limit of layers.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from typing import Final

from ingest import errors

__all__ = ["MAX_CODINGS", "STEP", "BodyDecoder"]

MAX_CODINGS: Final = 2
STEP: Final = 64 * 1024  # most bytes one zlib call may produce
_GZIP: Final = frozenset({"gzip", "x-gzip"})
_DEFLATE: Final = frozenset({"deflate"})
_IDENTITY: Final = frozenset({"", "identity"})


class _Layer:
    """One gzip or deflate stream (gzip may hold several members, one after another)."""

    def __init__(self, coding: str, cap: int, url: str | None) -> None:
        self.coding = coding
        self.gzip = coding in _GZIP
        self.cap = cap
        self.url = url
        self.out = 0  # bytes produced so far
        self.raw_deflate = False  # a "deflate" body without the zlib header (as some servers send)
        self.first = True
        self.d = self._new()

    def _new(self) -> zlib._Decompress:
        if self.gzip:
            return zlib.decompressobj(16 + zlib.MAX_WBITS)
        return zlib.decompressobj(-zlib.MAX_WBITS if self.raw_deflate else zlib.MAX_WBITS)

    def feed(self, data: bytes) -> Iterator[bytes]:
        """The output for `data`, in pieces of at most `STEP` bytes (b"" while none comes)."""
        if self.d.eof:
            if not (self.gzip and data.strip(b"\0")):
                return  # anything after the stream (or zero padding) is ignored
            self.d = self._new()  # a gzip member that starts in this chunk
        while True:
            try:
                out = self.d.decompress(data, STEP)
            except zlib.error as e:
                if self.first and not self.gzip and not self.raw_deflate:
                    self.raw_deflate = True  # retry the stream as raw deflate, like httpx does
                    self.d = self._new()
                    continue
                raise errors.FetchError(
                    f"the body is not valid {self.coding} data ({e})", url=self.url
                ) from e
            self.first = False
            data = self.d.unconsumed_tail
            self.out += len(out)
            if self.out > self.cap:
                raise _over(self.cap, self.url)
            if self.d.eof:
                data = self.d.unused_data
                if self.gzip and data.strip(b"\0"):
                    self.d = self._new()  # the next gzip member
                else:
                    data = b""
            yield out
            if not data and len(out) < STEP:
                return

    def finish(self) -> Iterator[bytes]:
        """Whatever the stream still holds once the input has ended (bounded like `feed`)."""
        while not self.d.eof:
            out = self.d.flush(STEP)
            if not out:
                return
            self.out += len(out)
            if self.out > self.cap:
                raise _over(self.cap, self.url)
            yield out


def _over(cap: int, url: str | None) -> errors.TooLargeError:
    return errors.TooLargeError(f"body passed the {cap}-byte cap", url=url)


class BodyDecoder:
    """Raw response bytes in, body pieces out; see the module docstring.

    `content_encoding` is the header's value (codings in the order they were
    applied, so they are undone from the last); more than `MAX_CODINGS`
    codings other than identity is refused with a `FetchError`.
    """

    def __init__(self, content_encoding: str | None, cap: int, url: str | None = None) -> None:
        codings = [c.strip().lower() for c in (content_encoding or "").split(",")]
        codings = [c for c in codings if c not in _IDENTITY]
        if len(codings) > MAX_CODINGS:
            raise errors.FetchError(
                f"Content-Encoding {', '.join(codings)!r} applies {len(codings)} codings; "
                f"at most {MAX_CODINGS} are accepted",
                url=url,
            )
        self.cap = cap
        self.url = url
        self.size = 0  # bytes of body produced so far
        self.layers = [
            _Layer(c, cap, url) for c in reversed(codings) if c in _GZIP or c in _DEFLATE
        ]

    def feed(self, raw: bytes) -> Iterator[bytes]:
        """The body pieces for the next raw bytes; b"" pieces mark work done without output."""
        yield from self._through(0, raw)

    def finish(self) -> Iterator[bytes]:
        """The body pieces still held by the layers once the raw bytes have ended."""
        for i, layer in enumerate(self.layers):
            for piece in layer.finish():
                yield from self._through(i + 1, piece)

    def _through(self, i: int, data: bytes) -> Iterator[bytes]:
        if i == len(self.layers):
            self.size += len(data)
            if self.size > self.cap:
                raise _over(self.cap, self.url)
            yield data
            return
        for piece in self.layers[i].feed(data):
            if piece:
                yield from self._through(i + 1, piece)
            else:
                yield b""
