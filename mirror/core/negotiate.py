"""PEP 691 content negotiation: an ``Accept`` header in, the page format to serve out.

The rules (RFC 9110 §12.5.1, as PyPI applies them): each format takes the q-value of the most
specific media range that names it (``type/sub`` over ``type/*`` over ``*/*``; the ``latest``
aliases count as v1); the highest q wins; ties go to ``text/html``, then the v1 HTML type, then
JSON. No header, an unparsable one, or one that accepts none of them gets ``text/html``: every
installer reads it, and a static tree has nothing better to offer (``examples/nginx`` does the
same).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

__all__ = ["PageFormat", "choose", "parse_accept"]


class PageFormat(Enum):
    """A representation of a simple-index page: its Content-Type and the file holding it."""

    HTML = ("text/html", "index.html")
    HTML_V1 = ("application/vnd.pypi.simple.v1+html", "index.v1_html")
    JSON = ("application/vnd.pypi.simple.v1+json", "index.v1_json")

    @property
    def media_type(self) -> str:
        return self.value[0]

    @property
    def filename(self) -> str:
        return self.value[1]

    @property
    def content_type(self) -> str:
        return self.media_type if self is PageFormat.JSON else f"{self.media_type}; charset=utf-8"


_NAMES: dict[PageFormat, tuple[str, ...]] = {
    PageFormat.HTML: ("text/html",),
    PageFormat.HTML_V1: ("application/vnd.pypi.simple.v1+html", "application/vnd.pypi.simple.latest+html"),
    PageFormat.JSON: ("application/vnd.pypi.simple.v1+json", "application/vnd.pypi.simple.latest+json"),
}
_TIE_ORDER = (PageFormat.HTML, PageFormat.HTML_V1, PageFormat.JSON)


@dataclass(frozen=True, slots=True)
class MediaRange:
    type: str
    subtype: str
    q: float

    @property
    def specificity(self) -> int:
        return (self.type != "*") + (self.subtype != "*")

    def covers(self, media_type: str) -> bool:
        main, _, sub = media_type.partition("/")
        return self.type in ("*", main) and self.subtype in ("*", sub)


def parse_accept(header: str) -> list[MediaRange]:
    """The media ranges of an Accept header; malformed elements are skipped, not fatal."""
    ranges = []
    for element in header.split(","):
        media, *params = (part.strip() for part in element.split(";"))
        main, slash, sub = media.lower().partition("/")
        if slash and main and sub:
            ranges.append(MediaRange(main, sub, _q(params)))
    return ranges


def _q(params: list[str]) -> float:
    for param in params:
        key, _, value = param.partition("=")
        if key.strip().lower() == "q":
            try:
                return min(max(float(value.strip()), 0.0), 1.0)
            except ValueError:
                return 0.0
    return 1.0


def _quality(ranges: list[MediaRange], media_type: str) -> float:
    covering = [r for r in ranges if r.covers(media_type)]
    if not covering:
        return 0.0
    best = max(r.specificity for r in covering)
    return max(r.q for r in covering if r.specificity == best)


def choose(accept: str | None) -> PageFormat:
    """The format to serve for this Accept header (see the module docstring for the rules)."""
    ranges = parse_accept(accept or "")
    best_q, best = 0.0, PageFormat.HTML
    for fmt in _TIE_ORDER:
        q = max(_quality(ranges, name) for name in _NAMES[fmt])
        if q > best_q:
            best_q, best = q, fmt
    return best
