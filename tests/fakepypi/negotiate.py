"""HTTP ``Accept`` header parsing and PEP 691 content negotiation."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

__all__ = ["Format", "MediaRange", "negotiate", "parse_accept"]

JSON_V1 = "application/vnd.pypi.simple.v1+json"
HTML_V1 = "application/vnd.pypi.simple.v1+html"
TEXT_HTML = "text/html"


class Format(Enum):
    """A representation of a simple-index page; the value is its Content-Type."""

    JSON = JSON_V1
    HTML_V1 = HTML_V1
    HTML = TEXT_HTML

    @property
    def is_json(self) -> bool:
        """True for the PEP 691 JSON representation."""
        return self is Format.JSON

    @property
    def content_type(self) -> str:
        """The Content-Type header value to send."""
        return self.value if self.is_json else f"{self.value}; charset=utf-8"


#: Media types a client may name, per representation we serve for them.
#: ``latest`` aliases resolve to v1, as on PyPI.
_ALIASES: dict[Format, tuple[str, ...]] = {
    Format.HTML: (TEXT_HTML,),
    Format.HTML_V1: (HTML_V1, "application/vnd.pypi.simple.latest+html"),
    Format.JSON: (JSON_V1, "application/vnd.pypi.simple.latest+json"),
}

#: Tie-break order when several formats share the best q-value.  Like
#: Warehouse (PyPI), ties go to ``text/html``, so ``*/*`` gets HTML.
_PREFERENCE = (Format.HTML, Format.HTML_V1, Format.JSON)


@dataclass(frozen=True)
class MediaRange:
    """One element of an Accept header."""

    type: str
    subtype: str
    q: float

    @property
    def specificity(self) -> int:
        """2 for ``type/sub``, 1 for ``type/*``, 0 for ``*/*``."""
        return (self.type != "*") + (self.subtype != "*")

    def matches(self, media_type: str) -> bool:
        """Whether this range covers a concrete ``type/subtype``."""
        mtype, _, msub = media_type.partition("/")
        return self.type in ("*", mtype) and self.subtype in ("*", msub)


def parse_accept(header: str) -> list[MediaRange]:
    """Parse an Accept header (RFC 9110), ignoring malformed elements."""
    ranges = []
    for element in header.split(","):
        media, *params = (p.strip() for p in element.split(";"))
        mtype, slash, subtype = media.lower().partition("/")
        if not slash or not mtype or not subtype:
            continue
        ranges.append(MediaRange(mtype, subtype, _q_value(params)))
    return ranges


def _q_value(params: list[str]) -> float:
    """The ``q`` parameter (default 1.0, clamped to [0, 1], 0 if malformed)."""
    for param in params:
        key, _, value = param.partition("=")
        if key.strip().lower() == "q":
            try:
                return min(max(float(value.strip()), 0.0), 1.0)
            except ValueError:
                return 0.0
    return 1.0


def _quality(ranges: list[MediaRange], media_type: str) -> float:
    """q of the most specific range matching ``media_type`` (0 if none)."""
    matching = [r for r in ranges if r.matches(media_type)]
    if not matching:
        return 0.0
    return max(matching, key=lambda r: r.specificity).q


def negotiate(accept: str | None) -> Format | None:
    """Pick the representation for an Accept header; None means 406.

    Each format gets the q-value of the most specific range matching any of
    its media types; the highest q wins, ties are broken by ``_PREFERENCE``.
    A missing, empty or unparsable header means "anything" (``text/html``).
    """
    ranges = parse_accept(accept or "")
    if not ranges:
        return Format.HTML
    best_q, best = 0.0, None
    for fmt in _PREFERENCE:
        q = max(_quality(ranges, t) for t in _ALIASES[fmt])
        if q > best_q:
            best_q, best = q, fmt
    return best
