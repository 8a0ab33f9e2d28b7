"""Bounded Content-Encoding decoding: no single call expands past the piece size."""

from __future__ import annotations

import gzip
import zlib

import pytest

from mirror._decoding import BoundedDecoder, DecodeError
from mirror.errors import UpstreamError

PIECE = 64 * 1024


def decode_all(decoder: BoundedDecoder, body: bytes, chunk: int = 256 * 1024) -> list[bytes]:
    return [piece for start in range(0, len(body), chunk) for piece in decoder.decode(body[start : start + chunk])]


def test_a_gzip_bomb_comes_out_in_bounded_pieces() -> None:
    expanded = 64 * 1024 * 1024
    bomb = gzip.compress(bytes(expanded), compresslevel=9)
    assert len(bomb) < expanded // 500  # one 256 KiB network read would expand past 100 MB at once
    pieces = decode_all(BoundedDecoder("gzip", PIECE), bomb)
    assert max(map(len, pieces)) <= PIECE
    assert sum(map(len, pieces)) == expanded


@pytest.mark.parametrize("wbits", [zlib.MAX_WBITS, -zlib.MAX_WBITS], ids=["zlib", "raw"])
def test_deflate_is_read_as_zlib_or_raw(wbits: int) -> None:
    body = b"simple index " * 10_000
    packer = zlib.compressobj(6, zlib.DEFLATED, wbits)
    pieces = decode_all(BoundedDecoder("deflate", PIECE), packer.compress(body) + packer.flush(), chunk=100)
    assert b"".join(pieces) == body


@pytest.mark.parametrize("encoding", ["", "identity", "Identity"])
def test_identity_passes_chunks_through(encoding: str) -> None:
    decoder = BoundedDecoder(encoding, PIECE)
    assert list(decoder.decode(b"abc")) == [b"abc"]
    assert list(decoder.decode(b"")) == []


@pytest.mark.parametrize("encoding", ["br", "zstd", "gzip, gzip", "compress"])
def test_encodings_we_never_ask_for_are_refused(encoding: str) -> None:
    with pytest.raises(UpstreamError, match="unsupported Content-Encoding"):
        BoundedDecoder(encoding, PIECE)


def test_a_body_that_is_not_what_it_claims_is_a_decode_error() -> None:
    with pytest.raises(DecodeError):
        decode_all(BoundedDecoder("gzip", PIECE), b"this is not gzip at all")
    with pytest.raises(DecodeError):
        decode_all(BoundedDecoder("deflate", PIECE), b"\xff" * 64)
