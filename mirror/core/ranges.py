"""HTTP ``Range`` requests (RFC 9110 §14) for one file: which bytes to send.

Only a single byte range is honoured; a multi-range request gets the whole file (which the RFC
allows), as installers resuming a download ask for one range.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ByteRange", "Unsatisfiable", "parse_range"]


@dataclass(frozen=True, slots=True)
class ByteRange:
    start: int
    end: int
    """Inclusive, as in ``Content-Range``."""

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    def content_range(self, size: int) -> str:
        return f"bytes {self.start}-{self.end}/{size}"


class Unsatisfiable(ValueError):
    """The range lies outside the file: answer 416."""


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The range to send, or None for the whole file; raises :class:`Unsatisfiable` for a 416."""
    if not header:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash or not (first.isdigit() or last.isdigit()) or not all(p.isdigit() for p in (first, last) if p):
        return None
    if not first:  # a suffix: the last N bytes
        count = int(last)
        if count == 0 or size == 0:
            raise Unsatisfiable(header)
        return ByteRange(max(size - count, 0), size - 1)
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size:
        raise Unsatisfiable(header)
    if end < start:
        return None
    return ByteRange(start, end)
