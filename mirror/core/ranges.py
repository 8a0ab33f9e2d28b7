"""HTTP ``Range`` requests (RFC 9110 §14) for one file: which bytes to send.

The rules, each with its section of RFC 9110:

- A unit other than ``bytes`` is ignored: the whole file is sent (§14.2, "MUST ignore a Range
  header field that contains a range unit it does not understand"). The unit is matched
  case-insensitively (§14.1), and nothing may stand between it and ``=`` (§14.1.1 grammar).
- Positions are ASCII digits only (``DIGIT`` is %x30-39, RFC 5234 §B.1; Python's ``isdigit``
  would take ``"٣"``), at most :data:`MAX_DIGITS` of them: no file is that large, and a
  5,000-digit number is not turned into an int.
- A ``bytes`` range that does not parse (garbage, ``last < first``, an empty set, too many
  digits) is rejected with 416. §14.2 lets a server "ignore or reject" an invalid
  ranges-specifier; nginx rejects, and ``mirror serve`` answers as nginx does.
- A single range that starts at or past the end of the file, or a zero-length suffix, is
  unsatisfiable: 416 (§14.1.1, §15.5.17). A last position past the end is cut to the end.
- Several ranges, all valid: the whole file (§14.2, "A server MAY ignore the Range header
  field"); installers resuming a download ask for one range.
- The caller applies a Range to GET only (§14.2) and only if ``If-Range`` allows it (§13.1.5).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MAX_DIGITS", "ByteRange", "Unsatisfiable", "parse_range"]

MAX_DIGITS = 18
"""A position of up to 18 digits fits a signed 64-bit offset, like nginx's ``off_t`` bound."""

_ASCII_DIGITS = frozenset("0123456789")
_OWS = " \t"


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
    """The range is invalid or lies outside the file: answer 416."""


@dataclass(frozen=True, slots=True)
class _Spec:
    first: int | None
    last: int | None


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The range to send, or None for the whole file; raises :class:`Unsatisfiable` for a 416."""
    if header is None:
        return None
    unit, equals, range_set = header.partition("=")
    if not equals or unit.lower() != "bytes":
        return None  # §14.2: an unknown unit (or no ranges-specifier at all) is ignored
    # §5.6.1.2: empty list elements ("bytes=0-9,") are accepted and ignored.
    specs = [_spec(element, header) for element in (e.strip(_OWS) for e in range_set.split(",")) if element]
    if not specs:
        raise Unsatisfiable(f"no byte range: {header!r}")
    if len(specs) > 1:
        return None  # §14.2: a server MAY ignore the Range; several ranges get the whole file
    return _select(specs[0], size, header)


def _spec(text: str, header: str) -> _Spec:
    first, dash, last = text.partition("-")
    if not dash or not (first or last):
        raise Unsatisfiable(f"not a byte range: {header!r}")
    spec = _Spec(_position(first, header), _position(last, header))
    if spec.first is not None and spec.last is not None and spec.last < spec.first:
        raise Unsatisfiable(f"last position before the first: {header!r}")  # §14.1.1: invalid
    return spec


def _position(text: str, header: str) -> int | None:
    if not text:
        return None
    if len(text) > MAX_DIGITS or not _ASCII_DIGITS.issuperset(text):
        raise Unsatisfiable(f"not a byte position: {header!r}")
    return int(text)


def _select(spec: _Spec, size: int, header: str) -> ByteRange:
    if spec.first is None:  # a suffix: the last N bytes (§14.1.1 suffix-range)
        count = spec.last or 0
        if count == 0 or size == 0:
            raise Unsatisfiable(header)
        return ByteRange(max(size - count, 0), size - 1)
    if spec.first >= size:
        raise Unsatisfiable(header)
    end = size - 1 if spec.last is None else min(spec.last, size - 1)
    return ByteRange(spec.first, end)
