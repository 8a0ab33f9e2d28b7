"""The PEP 691 JSON root index, parsed incrementally with bounded memory."""

from __future__ import annotations

import codecs
import json
import re
from typing import Final, cast

from packaging.utils import (
    NormalizedName,
)

from mirror.core.models import IndexEntry, IndexMeta
from mirror.core.parse._fields import (
    _MAX_SERIAL,
    _NORMALIZED_RE,
    MAX_ELEMENT_SIZE,
    MAX_NAME,
    Skipped,
    _Invalid,
    _liberal_api_version,
    _normalize,
    _reject_constant,
    _serial,
    _short,
)
from mirror.core.parse._root_runs import (
    JSON_NAME_RUN_RE,
    JSON_NAMES_RE,
    JSON_SERIAL_RUN_RE,
    JSON_SERIALS_RE,
    IndexBatch,
    normalize_names,
)
from mirror.errors import UpstreamError

_WS_RE: Final = re.compile(r"[ \t\n\r]*")
_SCALAR_RE: Final = re.compile(r"[^ \t\n\r,:\[\]{}\"]*")
_STRUCTURE_RE: Final = re.compile(r'["{}\[\]]')
_STRING_BODY_RE: Final = re.compile(r'[^"\\]*(?:\\.[^"\\]*)*', re.DOTALL)


def _match_end(pattern: re.Pattern[str], text: str, pos: int) -> int:
    """End of ``pattern`` (which can match the empty string) matched at ``pos``."""
    match = pattern.match(text, pos)
    return pos if match is None else match.end()


# States of the root JSON scanner.
_START, _FIRST_KEY, _KEY, _COLON, _VALUE, _FIRST_ITEM, _ITEM, _AFTER_ITEM, _AFTER_VALUE, _DONE = range(10)
_EXPECTED: Final = {
    _START: "'{'",
    _FIRST_KEY: "a key or '}'",
    _KEY: "a key",
    _COLON: "':'",
    _VALUE: "a value",
    _FIRST_ITEM: "a project or ']'",
    _ITEM: "a project",
    _AFTER_ITEM: "',' or ']' in projects",
    _AFTER_VALUE: "',' or '}'",
    _DONE: "the end of the document",
}


class IndexJsonParser:
    """Incremental parser of a PEP 691 JSON root index (``/simple/`` as JSON).

    ``feed()`` returns the projects completed by each chunk; ``close()`` checks that the document
    was complete and valid and returns its ``meta``. Memory stays bounded by the chunk size plus
    :data:`MAX_ELEMENT_SIZE`: the ``projects`` list is never held whole. Top-level keys may come in
    any order; unknown keys are skipped (each value bounded like an element).
    """

    def __init__(self) -> None:
        self._utf8 = codecs.getincrementaldecoder("utf-8-sig")()
        self._json = json.JSONDecoder(parse_constant=_reject_constant)
        self._buf = ""
        self._offset = 0  # characters consumed before self._buf
        self._state = _START
        self._key = ""
        self._items = 0
        self._meta: IndexMeta | None = None
        self._seen_projects = False
        self._scan: tuple[int, int, bool] | None = None  # resumable scan of an incomplete value
        self._error: UpstreamError | None = None
        self._closed = False
        self.skipped = Skipped()
        self.dropped = Skipped()
        """Fields it could not use and left out: an unreadable api version or serial."""

    def feed(self, chunk: bytes) -> list[IndexEntry]:
        """Consume the next chunk; return the projects it completed."""
        batch = self.feed_batch(chunk)
        return [IndexEntry(name, serial) for name, serial in zip(batch.names, batch.serials, strict=True)]

    def feed_batch(self, chunk: bytes) -> IndexBatch:
        """:meth:`feed`, as two lists (names, serials): no object per project (a root lists a million)."""
        self._check_usable()
        try:
            text = self._utf8.decode(chunk)
        except UnicodeDecodeError as exc:
            raise self._fail(f"not UTF-8 ({exc.reason})") from None
        self._buf = self._buf + text if self._buf else text
        out = IndexBatch()
        try:
            self._run(out)
        except _Invalid as exc:
            raise self._fail(str(exc)) from None
        return out

    def close(self) -> IndexMeta:
        """End of input: raise UpstreamError if the document is incomplete or invalid."""
        self._check_usable()
        self._closed = True
        try:
            self._utf8.decode(b"", final=True)
        except UnicodeDecodeError:
            raise self._fail("document ends inside a UTF-8 sequence") from None
        if self._state != _DONE:
            what = "empty document" if self._state == _START else "document ends early"
            raise self._fail(f"{what}: expected {_EXPECTED[self._state]}")
        if not self._seen_projects:
            raise self._fail("projects missing")
        if self._meta is None:
            self._meta = IndexMeta()  # PEP 691 requires it; without it, the page is read as api 1.0
            self.dropped.note("meta missing (read as api-version 1.0)")
        return self._meta

    def _check_usable(self) -> None:
        if self._error is not None:
            raise self._error
        if self._closed:
            raise RuntimeError("IndexJsonParser is closed")

    def _fail(self, message: str) -> UpstreamError:
        self._error = UpstreamError(f"invalid JSON root index: {message}")
        return self._error

    def _run(self, out: IndexBatch) -> None:
        buf = self._buf
        n = len(buf)
        pos = 0
        try:
            while True:
                if pos < n and buf[pos] in " \t\n\r":
                    pos = _match_end(_WS_RE, buf, pos)
                if pos >= n:
                    break
                char = buf[pos]
                state = self._state
                if state == _ITEM or (state == _FIRST_ITEM and char != "]"):
                    if char == "{" and self._scan is None:
                        end = self._take_run(buf, pos, out)
                        if end > pos:
                            pos = end
                            self._state = _AFTER_ITEM
                            continue
                    if char != "{":
                        where = self._at(pos)
                        raise _Invalid(f"projects[{self._items}] must be an object at character {where}")
                    taken = self._take(buf, pos)
                    if taken is None:
                        break
                    value, pos = taken
                    try:
                        entry = cast("dict[str, object]", value)  # '{' decoded
                        out.add(*_index_row(entry, self._items, self.dropped))
                    except _Invalid as exc:
                        self.skipped.note(str(exc))
                    self._items += 1
                    self._state = _AFTER_ITEM
                elif state == _AFTER_ITEM and char in ",]":
                    pos += 1
                    self._state = _ITEM if char == "," else _AFTER_VALUE
                elif state == _FIRST_ITEM:  # and char == "]"
                    pos += 1
                    self._state = _AFTER_VALUE
                elif state == _START and char == "{":
                    pos += 1
                    self._state = _FIRST_KEY
                elif state in (_FIRST_KEY, _KEY) and char == '"':
                    taken = self._take(buf, pos)
                    if taken is None:
                        break
                    key, pos = taken
                    self._key = str(key)
                    self._state = _COLON
                elif (state == _FIRST_KEY and char == "}") or (state == _AFTER_VALUE and char in ",}"):
                    pos += 1
                    self._state = _KEY if char == "," else _DONE
                elif state == _COLON and char == ":":
                    pos += 1
                    self._state = _VALUE
                elif state == _VALUE and self._key == "projects":
                    if self._seen_projects:
                        raise _Invalid("projects given twice")
                    if char != "[":
                        raise _Invalid(f"projects must be a list at character {self._at(pos)}")
                    self._seen_projects = True
                    pos += 1
                    self._state = _FIRST_ITEM
                elif state == _VALUE:
                    taken = self._take(buf, pos)
                    if taken is None:
                        break
                    value, pos = taken
                    if self._key == "meta":
                        if self._meta is not None:
                            raise _Invalid("meta given twice")
                        self._meta = _index_meta(value, self.dropped)
                    self._state = _AFTER_VALUE
                else:
                    raise _Invalid(f"expected {_EXPECTED[state]} at character {self._at(pos)}, found {_short(char)}")
        finally:
            self._buf = buf[pos:]
            self._offset += pos

    def _take_run(self, buf: str, start: int, out: IndexBatch) -> int:
        """Read the run of plain projects at ``start`` (see ``_root_runs``); where it ends (``start``: none)."""
        with_serials = JSON_SERIAL_RUN_RE.match(buf, start)
        run = with_serials or JSON_NAME_RUN_RE.match(buf, start)
        if run is None:
            return start
        end = run.end()
        names = normalize_names(JSON_NAMES_RE.findall(buf, start, end))
        out.names += names
        if with_serials is not None:
            out.serials += map(int, JSON_SERIALS_RE.findall(buf, start, end))
        else:
            out.serials += [None] * len(names)
        if len(out.serials) != len(out.names):  # cannot happen: each entry of the run holds one of each
            raise RuntimeError("root index run: names and serials differ in number")
        self._items += len(names)
        return end

    def _at(self, pos: int) -> int:
        return self._offset + pos

    def _take(self, buf: str, start: int) -> tuple[object, int] | None:
        """Decode the JSON value at ``buf[start]``; None while it is incomplete."""
        if self._scan is None and buf[start] in '{["':
            # Fast path: a complete container or string decodes at once and is then final.
            try:
                value, end = self._json.raw_decode(buf, start)
            except (ValueError, RecursionError):
                pass
            else:
                if end - start > MAX_ELEMENT_SIZE:
                    raise _Invalid(f"element at character {self._at(start)} larger than 1 MiB")
                return value, end
        extent = self._extent(buf, start)
        if extent is None:
            if len(buf) - start > MAX_ELEMENT_SIZE:
                raise _Invalid(f"element at character {self._at(start)} larger than 1 MiB")
            return None
        end = extent
        if end - start > MAX_ELEMENT_SIZE:
            raise _Invalid(f"element at character {self._at(start)} larger than 1 MiB")
        try:
            return self._json.raw_decode(buf[:end], start)
        except json.JSONDecodeError as exc:
            raise _Invalid(f"{exc.msg} at character {self._at(exc.pos)}") from None
        except RecursionError:
            raise _Invalid(f"nesting too deep at character {self._at(start)}") from None
        except ValueError as exc:
            raise _Invalid(f"{str(exc).splitlines()[0]} at character {self._at(start)}") from None

    def _extent(self, buf: str, start: int) -> int | None:
        """Where the value at ``buf[start]`` ends, from its structure alone; None if not yet known.

        Resumable: the scan state is kept in ``self._scan`` (relative to ``start``) so each
        character of an incomplete value is scanned once, however many chunks it spans.
        """
        n = len(buf)
        first = buf[start]
        if first not in '{["':
            # A number or literal ends at the first delimiter; resume where the last scan stopped.
            resume = start if self._scan is None else start + self._scan[0]
            end = _match_end(_SCALAR_RE, buf, resume)
            if end >= n:
                self._scan = (end - start, 0, False)
                return None  # it may go on in the next chunk; at close the state reports it
            self._scan = None
            return max(end, start + 1)
        if self._scan is None:
            self._scan = (1, 0, True) if first == '"' else (1, 1, False)
        offset, depth, in_string = self._scan
        pos = start + offset
        while pos < n:
            if in_string:
                pos = _match_end(_STRING_BODY_RE, buf, pos)
                if pos >= n or buf[pos] != '"':
                    break  # the string goes on (possibly after a trailing backslash)
                pos += 1
                in_string = False
                if depth == 0:
                    self._scan = None
                    return pos
            else:
                match = _STRUCTURE_RE.search(buf, pos)
                if match is None:
                    pos = n
                    break
                pos = match.end()
                char = match.group()
                if char == '"':
                    in_string = True
                elif char in "{[":
                    depth += 1
                else:
                    depth -= 1
                    if depth == 0:
                        self._scan = None
                        return pos
        self._scan = (pos - start, depth, in_string)
        return None


def _index_meta(value: object, dropped: Skipped) -> IndexMeta:
    if not isinstance(value, dict):
        dropped.note(f"meta is not an object: {_short(value)}")
        value = {}
    return IndexMeta(
        api_version=_liberal_api_version(value.get("api-version"), "meta.api-version", dropped),
        last_serial=_serial(value.get("_last-serial"), "meta._last-serial", dropped),
    )


def _index_row(value: dict[str, object], index: int, dropped: Skipped) -> tuple[NormalizedName, int | None]:
    name = value.get("name")
    serial = value.get("_last-serial")
    # Fast path for the common case (800,000 times on PyPI): already normalized, plain serial.
    if type(name) is not str or len(name) > MAX_NAME or _NORMALIZED_RE.fullmatch(name) is None:
        name = _normalize(name, f"projects[{index}].name")
    if type(serial) is not int or not 0 <= serial <= _MAX_SERIAL:
        serial = _serial(serial, f"projects[{index}]._last-serial", dropped)
    return NormalizedName(name), serial
