"""The HTML tokenizer both HTML parsers share: anchors, ``<base>``, PEP 629/792 metas, SERIAL."""

from __future__ import annotations

import codecs
from collections.abc import Callable
from html.parser import HTMLParser

from mirror.core.parse._fields import (
    _SERIAL_RE,
    MAX_ELEMENT_SIZE,
    Skipped,
    _Invalid,
    _liberal_api_version,
)

Attrs = dict[str, str | None]


class _SimpleHTML(HTMLParser):
    """Collects what the simple API puts in HTML: anchors, ``<base>``, PEP 629/792 metas, SERIAL."""

    def __init__(self, on_anchor: Callable[[Attrs, str], None], *, collect_text: bool) -> None:
        super().__init__(convert_charrefs=True)
        self._on_anchor = on_anchor
        self._collect_text = collect_text
        self._anchor: Attrs | None = None
        self._text: list[str] = []
        self._text_len = 0
        self.base_href: str | None = None
        self.api_version: str | None = None
        self.status: str | None = None
        self.status_reason: str | None = None
        self.serial: int | None = None
        self.ended = False
        """Whether ``</body>`` or ``</html>`` was seen (a root index without it is truncated)."""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values: Attrs = {}
        for key, value in attrs:
            values.setdefault(key, value)  # HTML: the first of duplicate attributes wins
        if tag == "a":
            self._finish_anchor()
            self._anchor = values
        elif tag == "base":
            href = values.get("href")
            if self.base_href is None and href is not None:
                self.base_href = href
        elif tag == "meta":
            self._meta((values.get("name") or "").strip().lower(), values.get("content"))

    def _meta(self, name: str, content: str | None) -> None:
        if content is None:
            return
        if name == "pypi:repository-version" and self.api_version is None:
            self.api_version = content
        elif name == "pypi:project-status" and self.status is None:
            self.status = content
        elif name == "pypi:project-status-reason" and self.status_reason is None:
            self.status_reason = content

    def handle_endtag(self, tag: str) -> None:
        if tag == "a":
            self._finish_anchor()
        elif tag in ("body", "html"):
            self._finish_anchor()
            self.ended = True

    def handle_data(self, data: str) -> None:
        if self._anchor is not None and self._collect_text:
            self._text_len += len(data)
            if self._text_len > MAX_ELEMENT_SIZE:
                raise _Invalid("anchor text too long")
            self._text.append(data)

    def handle_comment(self, data: str) -> None:
        match = _SERIAL_RE.fullmatch(data.strip())
        if match is not None and self.serial is None:
            self.serial = int(match.group(1))

    def _finish_anchor(self) -> None:
        if self._anchor is not None:
            attrs, text = self._anchor, "".join(self._text)
            self._anchor, self._text, self._text_len = None, [], 0
            self._on_anchor(attrs, text)

    def feed_checked(self, text: str) -> None:
        self.feed_part(text)
        self.check_unterminated()

    def feed_part(self, text: str) -> None:
        """Feed a piece of a chunk; the caller checks :meth:`check_unterminated` once the chunk is in."""
        _guard(lambda: self.feed(text))

    def check_unterminated(self) -> None:
        if len(self.rawdata) > MAX_ELEMENT_SIZE:
            raise _Invalid("unterminated markup larger than 1 MiB")

    @property
    def idle(self) -> bool:
        """Between elements: nothing buffered, no anchor open, not inside raw text (``<script>``, ...).

        Markup that starts here is read exactly as if the document started here, so a caller may read
        it by other means and feed what follows.
        """
        return not self.rawdata and self.cdata_elem is None and self._anchor is None

    def finish(self) -> None:
        _guard(self.close)
        self._finish_anchor()


def _guard(action: Callable[[], None]) -> None:
    try:
        action()
    except AssertionError as exc:  # _markupbase reports malformed declarations this way
        raise _Invalid(_malformed(exc)) from None


def _malformed(exc: AssertionError) -> str:
    lines = str(exc).splitlines()
    return f"malformed HTML: {lines[0] if lines else 'bad declaration'}"


_FEED_SIZE = 1 << 20


def _feed_html(parser: _SimpleHTML, body: bytes) -> None:
    """Decode and feed ``body`` a MiB at a time: neither a whole decoded copy nor the parser's
    unprocessed buffer ever holds the page (a page of a million links is 40 MB)."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    for start in range(0, len(body) + 1, _FEED_SIZE):
        try:
            text = decoder.decode(body[start : start + _FEED_SIZE], final=start + _FEED_SIZE > len(body))
        except UnicodeDecodeError as exc:
            raise _Invalid(f"not UTF-8 ({exc.reason} at byte {start + exc.start})") from None
        parser.feed_checked(text)


def _html_api_version(value: str | None, dropped: Skipped) -> str:
    return _liberal_api_version(value, "pypi:repository-version", dropped)
