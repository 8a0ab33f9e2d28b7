"""The PEP 503 HTML root index, parsed incrementally with bounded memory."""

from __future__ import annotations

import codecs
from typing import Final
from urllib.parse import unquote, urlsplit

from mirror.core.models import IndexEntry, IndexMeta
from mirror.core.parse._fields import (
    Skipped,
    _Invalid,
    _normalize,
    _short,
)
from mirror.core.parse._html import Attrs, _html_api_version, _SimpleHTML
from mirror.core.parse._root_runs import HTML_ANCHOR_START, HTML_NAMES_RE, HTML_RUN_RE, IndexBatch, normalize_names
from mirror.errors import UpstreamError

# Distribution file names (PEP 527 and the legacy formats a directory of them may hold).
_DIST_SUFFIXES: Final = (".whl", ".tar.gz", ".zip", ".tar.bz2", ".tgz", ".tar.xz", ".egg", ".exe", ".msi", ".rpm")


class IndexHtmlParser:
    """Incremental parser of a PEP 503 HTML root index, with the interface of :class:`IndexJsonParser`.

    Each anchor with an ``href`` is a project: its text (or else the last path segment of its
    ``href``) is the name. Serials are unknown per project; ``close()`` returns the PEP 629
    ``pypi:repository-version`` (default 1.0) and the ``<!--SERIAL n-->`` comment if present, and
    raises UpstreamError if the document never reached ``</body>`` or ``</html>`` (truncated), or
    if it links distribution files rather than projects (a directory listing of wheels, or a
    project page given as the root): every "project" of such a page would 404.
    """

    def __init__(self) -> None:
        self._utf8 = codecs.getincrementaldecoder("utf-8-sig")()
        self._pending = IndexBatch()
        self.skipped = Skipped()
        self.dropped = Skipped()
        """Fields of the page itself it could not use and left out (an unreadable api version)."""
        self._parser = _SimpleHTML(self._on_anchor, collect_text=True)
        self._error: UpstreamError | None = None
        self._closed = False
        self._anchors = 0
        self._file_links = 0
        self._file_example = ""

    def feed(self, chunk: bytes) -> list[IndexEntry]:
        """Consume the next chunk; return the projects it completed."""
        return [IndexEntry(name) for name in self.feed_batch(chunk).names]

    def feed_batch(self, chunk: bytes) -> IndexBatch:
        """:meth:`feed`, as two lists (names, serials: all None): no object per project."""
        self._check_usable()
        try:
            text = self._utf8.decode(chunk)
        except UnicodeDecodeError as exc:
            raise self._fail(f"not UTF-8 ({exc.reason})") from None
        try:
            self._feed_text(text)
            self._parser.check_unterminated()
        except _Invalid as exc:
            raise self._fail(str(exc)) from None
        out, self._pending = self._pending, IndexBatch()
        return out

    def _feed_text(self, text: str) -> None:
        """Runs of plain anchors (see ``_root_runs``) are read at once; the rest goes to the HTML parser.

        A run is only read where the HTML parser is idle (between elements, outside comments and raw
        text), so everything around it is tokenized exactly as a whole-chunk feed would. Once the parser
        is inside something the chunk's rest goes to it whole: never many small feeds onto a large buffer.
        """
        parser = self._parser
        pos, n = 0, len(text)
        while pos < n:
            start = text.find(HTML_ANCHOR_START, pos)
            if start < 0:
                parser.feed_part(text[pos:])
                return
            if start > pos:
                parser.feed_part(text[pos:start])
            if not parser.idle:
                parser.feed_part(text[start:])
                return
            run = HTML_RUN_RE.match(text, start)
            if run is None:  # an anchor the fast path cannot read: the parser reads it
                after = text.find(HTML_ANCHOR_START, start + 1)
                pos = n if after < 0 else after
                parser.feed_part(text[start:pos])
                continue
            names = HTML_NAMES_RE.findall(text, start, run.end())
            self._anchors += len(names)
            self._pending.names += normalize_names(names)
            self._pending.serials += [None] * len(names)
            pos = run.end()

    def close(self) -> IndexMeta:
        """End of input: raise UpstreamError if the document is truncated or invalid."""
        self._check_usable()
        self._closed = True
        try:
            self._utf8.decode(b"", final=True)
        except UnicodeDecodeError:
            raise self._fail("document ends inside a UTF-8 sequence") from None
        try:
            self._parser.finish()
            if len(self._pending) or not self._parser.ended:
                raise _Invalid("document ends early (no </body> or </html>)")
            if self._file_links and self._file_links * 2 >= self._anchors:
                raise _Invalid(
                    f"it links distribution files, not projects (e.g. {_short(self._file_example)}): "
                    "a directory listing is not a simple index (PEP 503)"
                )
            api_version = _html_api_version(self._parser.api_version, self.dropped)
        except _Invalid as exc:
            raise self._fail(str(exc)) from None
        return IndexMeta(api_version=api_version, last_serial=self._parser.serial)

    def _check_usable(self) -> None:
        if self._error is not None:
            raise self._error
        if self._closed:
            raise RuntimeError("IndexHtmlParser is closed")

    def _fail(self, message: str) -> UpstreamError:
        self._error = UpstreamError(f"invalid HTML root index: {message}")
        return self._error

    def _on_anchor(self, attrs: Attrs, text: str) -> None:
        href = attrs.get("href")
        if href is None:
            return
        try:
            path = urlsplit(href.strip()).path
        except ValueError:
            raise _Invalid(f"unusable link {_short(href)}") from None
        self._anchors += 1
        segment = unquote(path.rpartition("/")[2])
        if segment.lower().endswith(_DIST_SUFFIXES):
            # A link to a file, not to a project's page: counted to recognise a flat listing.
            self._file_links += 1
            self._file_example = self._file_example or segment
        name = text.strip()
        if not name:
            name = unquote(path.rstrip("/").rpartition("/")[2])
        if not name:
            return
        try:
            self._pending.add(_normalize(name, "project name"), None)
        except _Invalid as exc:
            self.skipped.note(str(exc))
