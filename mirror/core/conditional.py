"""Validators and conditional requests (RFC 9110 §8.8, §13) for a served file: ETag, Last-Modified, 304.

The ETag is ``"<mtime in ns, hex>-<size, hex>"``, nginx's shape with the file system's full
time precision: a page republished within the same second, at the same size, still gets a new
tag. It survives a copy that keeps times (``rsync -t``, ``cp -p``), as nginx's does. A gzip-encoded
page carries it weak (``W/"…"``), as nginx does: another encoding is not the same bytes (§8.8.1).

A mirror never rewrites an unchanged page, so these validators hold for as long as the content
does, and a downstream mirror's conditional requests get 304s until something changed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.utils import formatdate, parsedate_to_datetime

__all__ = ["Validators", "not_modified", "range_allowed"]

_ENTITY_TAG = re.compile(r'(W/)?("[\x21\x23-\x7e\x80-\xff]*")')


@dataclass(frozen=True, slots=True)
class Validators:
    etag: str
    """Strong and quoted."""
    mtime: int
    """Seconds since the epoch: what Last-Modified can say."""

    @classmethod
    def of(cls, mtime_ns: int, size: int) -> Validators:
        return cls(f'"{mtime_ns:x}-{size:x}"', mtime_ns // 1_000_000_000)

    @property
    def weak_etag(self) -> str:
        return f"W/{self.etag}"

    @property
    def last_modified(self) -> str:
        return formatdate(self.mtime, usegmt=True)


def not_modified(validators: Validators, if_none_match: str | None, if_modified_since: str | None) -> bool:
    """Whether a GET or HEAD with these headers is answered 304 (RFC 9110 §13.2.2, steps 3 and 4)."""
    if if_none_match is not None:
        # §13.1.2: weak comparison; "*" matches any current representation. With If-None-Match
        # present, If-Modified-Since is ignored (§13.1.3).
        if if_none_match.strip() == "*":
            return True
        opaque = {tag for _weak, tag in _ENTITY_TAG.findall(if_none_match)}
        return validators.etag in opaque
    if if_modified_since is not None:
        since = _http_date(if_modified_since)  # §13.1.3: an invalid date is ignored
        return since is not None and validators.mtime <= since
    return False


def range_allowed(validators: Validators, if_range: str | None) -> bool:
    """Whether a Range may be applied, given ``If-Range`` (RFC 9110 §13.1.5).

    An entity-tag must match by strong comparison (a weak one never does); a date must equal
    the Last-Modified exactly. Otherwise the Range is ignored and the whole file sent.
    """
    if if_range is None:
        return True
    value = if_range.strip()
    if value.startswith('"'):
        return value == validators.etag
    if value.startswith("W/"):
        return False
    return _http_date(value) == validators.mtime


def _http_date(text: str) -> int | None:
    """Seconds of an HTTP-date in any of the three formats of RFC 9110 §5.6.7, or None."""
    try:
        moment = parsedate_to_datetime(text.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if moment.tzinfo is None:
        return None
    try:
        return int(moment.timestamp())
    except (OverflowError, OSError, ValueError):
        return None
