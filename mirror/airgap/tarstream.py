"""A small, strict reader for the tar streams ``mirror export`` writes: regular files only, bounded headers.

The standard library's reader buffers a pax header whole (a 0.5 MB gzip bundle declaring a 512 MiB
pax header took 1.1 GB of memory) and accepts every member type. A bundle holds regular files and
nothing else, so this reader takes ustar headers, pax extended headers of at most
:data:`MAX_PAX` bytes (for long or non-ASCII names and sizes of 8 GiB and more), and refuses
everything else (links, devices, directories, global and GNU headers, sparse files) with
:class:`BundleRefused`. Memory stays at a block plus one pax header, whatever the stream says.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Protocol

from mirror.errors import BundleRefused

BLOCK = 512
MAX_PAX = 16 << 10
"""Largest pax extended header read (bytes): a path of MAX_PATH bytes and a size fit many times over."""
_REGULAR = (b"0", b"\0")
_PAX = b"x"
_KINDS = {
    b"1": "a hard link",
    b"2": "a symbolic link",
    b"3": "a character device",
    b"4": "a block device",
    b"5": "a directory",
    b"6": "a FIFO",
    b"7": "a contiguous file",
    b"g": "a global pax header",
    b"L": "a GNU long name",
    b"K": "a GNU long link",
    b"S": "a GNU sparse file",
}


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


@dataclass(frozen=True, slots=True)
class Member:
    name: str
    size: int


class TarStream:
    """Reads members one after the other: :meth:`next`, then :meth:`read` its data (or not)."""

    def __init__(self, source: Readable, where: str) -> None:
        self._source, self._where = source, where
        self._left = 0  # data bytes of the current member not read yet
        self._padding = 0

    def next(self) -> Member | None:
        """The next member, or None at the end of the archive."""
        self._skip_rest()
        block = self._exact(BLOCK, "a header")
        if block == bytes(BLOCK):
            return None
        kind = self._check(block)
        pax: dict[str, str] = {}
        if kind == _PAX:
            pax = self._pax(_size_field(block, self._where))
            block = self._exact(BLOCK, "the header after a pax header")
            kind = self._check(block)
        if kind not in _REGULAR:
            name = _text(block[:100].rstrip(b"\0"), self._where)
            raise BundleRefused(f"{self._where}: member {name!r} is {_KINDS.get(kind, 'not a regular file')}")
        if any(key.startswith("GNU.sparse") for key in pax):
            raise BundleRefused(f"{self._where}: a GNU sparse file (only regular files belong in a bundle)")
        name = pax.get("path") or _ustar_name(block, self._where)
        size = _decimal(pax["size"], self._where) if "size" in pax else _size_field(block, self._where)
        self._left, self._padding = size, -size % BLOCK
        return Member(name, size)

    def read(self, size: int) -> bytes:
        """Up to ``size`` bytes of the current member's data; b"" at its end."""
        take = min(size, self._left)
        if take <= 0:
            return b""
        data = self._source.read(take)
        if not data:
            raise BundleRefused(f"{self._where}: the tar stream ends inside a file (truncated)")
        self._left -= len(data)
        return data

    def _skip_rest(self) -> None:
        while self._left:
            self.read(1 << 20)
        if self._padding:
            self._exact(self._padding, "padding")
            self._padding = 0

    def _pax(self, size: int) -> dict[str, str]:
        if size > MAX_PAX:
            raise BundleRefused(f"{self._where}: a pax header of {size} bytes (at most {MAX_PAX} are read)")
        body = self._exact(size, "a pax header")
        self._exact(-size % BLOCK, "padding")
        records: dict[str, str] = {}
        while body:
            length_text, space, _ = body.partition(b" ")
            if not space or not length_text.isdigit() or len(length_text) > 6:
                raise BundleRefused(f"{self._where}: a malformed pax header")
            length = int(length_text)
            if not len(length_text) + 1 < length <= len(body):
                raise BundleRefused(f"{self._where}: a malformed pax header")
            record, body = body[:length], body[length:]
            key, equals, value = record[len(length_text) + 1 :].partition(b"=")
            if not equals or not value.endswith(b"\n"):
                raise BundleRefused(f"{self._where}: a malformed pax header")
            records[_text(key, self._where)] = _text(value[:-1], self._where)
        return records

    def _check(self, block: bytes) -> bytes:
        stored = block[148:156].strip(b" \0")
        if not stored or not _is_octal(stored):
            raise BundleRefused(f"{self._where}: not a tar stream (bad header checksum)")
        unsigned = sum(block[:148]) + 8 * 32 + sum(block[156:])
        signed = sum(b - 256 if b > 127 else b for b in block[:148] + block[156:]) + 8 * 32
        if int(stored, 8) not in (unsigned, signed):
            raise BundleRefused(f"{self._where}: damaged tar stream (bad header checksum)")
        return block[156:157]

    def _exact(self, size: int, what: str) -> bytes:
        chunks, left = [], size
        while left:
            data = self._source.read(left)
            if not data:
                raise BundleRefused(f"{self._where}: the tar stream ends inside {what} (truncated)")
            chunks.append(data)
            left -= len(data)
        return b"".join(chunks)


def _ustar_name(block: bytes, where: str) -> str:
    name = block[:100].split(b"\0", 1)[0]
    if block[257:263] == b"ustar\0":  # POSIX ustar: a prefix field holds the start of a long name
        prefix = block[345:500].split(b"\0", 1)[0]
        if prefix:
            name = prefix + b"/" + name
    return _text(name, where)


def _size_field(block: bytes, where: str) -> int:
    field = block[124:136].strip(b" \0")
    if not field or not _is_octal(field):
        raise BundleRefused(f"{where}: a tar header with a bad size field")
    return int(field, 8)


def _decimal(text: str, where: str) -> int:
    if not (text.isascii() and text.isdigit() and len(text) <= 19):
        raise BundleRefused(f"{where}: a pax header with a bad size {text[:40]!r}")
    return int(text)


def _is_octal(field: bytes) -> bool:
    return all(0x30 <= byte <= 0x37 for byte in field)


def _text(raw: bytes, where: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BundleRefused(f"{where}: a tar name that is not UTF-8") from None


class Gunzip:
    """A gzip stream decompressed as it is read, at most ``size`` bytes at a time (a bomb stays a trickle)."""

    def __init__(self, source: Readable, where: str) -> None:
        self._source, self._where = source, where
        self._inflate = zlib.decompressobj(wbits=31)

    def read(self, size: int = -1, /) -> bytes:
        limit = size if size > 0 else 1 << 20
        while not self._inflate.eof:
            data = self._inflate.unconsumed_tail or self._source.read(1 << 16)
            if not data:
                raise BundleRefused(f"{self._where}: the compressed stream ends early (truncated)")
            try:
                out = self._inflate.decompress(data, limit)
            except zlib.error as exc:
                raise BundleRefused(f"{self._where}: damaged compressed stream ({exc})") from None
            if out:
                return out
        return b""
