"""Content-Encoding decoding that never expands one network chunk into a huge buffer.

httpx's decoders hand a whole network read to ``zlib`` at once: 256 KiB of a gzip "bomb"
becomes 256 MB in one call, before any size check sees it (a 3 MB root that expands to
3 GiB cost 838 MB of RSS). Here every call to ``zlib`` is capped with ``max_length``, so the
callers' size limits apply piece by piece and memory stays bounded by the piece size.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

from mirror.errors import UpstreamError

ACCEPT_ENCODING = "gzip, deflate"
"""What we ask for: exactly what :class:`BoundedDecoder` can decode."""


class DecodeError(Exception):
    """The body does not decode with the encoding it claims (a transfer problem: worth a retry)."""


class BoundedDecoder:
    """Decodes a body of one ``Content-Encoding`` (identity, gzip or deflate) in pieces of at most ``piece`` bytes."""

    def __init__(self, content_encoding: str, piece: int) -> None:
        codings = [c.strip().lower() for c in content_encoding.split(",") if c.strip()]
        codings = [c for c in codings if c != "identity"]
        self._piece = piece
        self._raw_deflate_tried = False
        self._zlib: zlib._Decompress | None = None
        if not codings:
            return
        if len(codings) > 1 or codings[0] not in ("gzip", "x-gzip", "deflate"):
            raise UpstreamError(f"unsupported Content-Encoding {content_encoding!r} (we ask for {ACCEPT_ENCODING})")
        self._deflate = codings[0] == "deflate"
        # gzip: a gzip header; deflate: RFC 9110 says a zlib stream, but servers send raw deflate too.
        self._zlib = zlib.decompressobj(zlib.MAX_WBITS if self._deflate else zlib.MAX_WBITS | 16)

    @property
    def identity(self) -> bool:
        """True when the body is not encoded: each piece as read is a decoded piece (of at most ``piece`` bytes)."""
        return self._zlib is None

    def decode(self, data: bytes) -> Iterator[bytes]:
        """The decoded pieces of ``data`` (each at most ``piece`` bytes)."""
        if self._zlib is None:
            if data:
                yield data
            return
        try:
            yield from self._pieces(data)
        except zlib.error as exc:
            if not self._deflate or self._raw_deflate_tried:
                raise DecodeError(f"{exc}") from None
            # The first bytes were not a zlib stream: start again as raw deflate (as browsers do).
            self._raw_deflate_tried = True
            self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
            yield from self.decode(data)

    def _pieces(self, data: bytes) -> Iterator[bytes]:
        assert self._zlib is not None
        out = self._zlib.decompress(data, self._piece)
        self._raw_deflate_tried = True  # once anything decoded, the format is settled
        if out:
            yield out
        while self._zlib.unconsumed_tail:
            out = self._zlib.decompress(self._zlib.unconsumed_tail, self._piece)
            if out:
                yield out
