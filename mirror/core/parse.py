"""Parse simple repository pages (PEP 503 HTML, PEP 691 JSON) into models.

Pure: bytes plus a base URL in, frozen models out. Nothing here trusts its input: every
field is type-checked, hash digests are validated, sizes are bounded, and anything
unusable raises :class:`~mirror.errors.UpstreamError` with a one-line message.

Conventions shared by both formats:

* project names are normalized (and validated) with ``packaging.utils.canonicalize_name``;
* file URLs are resolved against the page URL (and ``<base href>`` in HTML) and carry no
  fragment: hashes live in :attr:`DistFile.hashes`;
* hash names are lower-cased; digests must be hex (and of the right length for the
  ``hashlib`` algorithms) and are lower-cased;
* in JSON an optional key set to ``null`` counts as absent (as pip reads it);
* ``""`` for ``requires-python`` / ``upload-time`` means unknown (None); ``yanked: ""``
  means yanked without a reason (True);
* PEP 658/714 metadata: ``core-metadata`` wins over the legacy ``dist-info-metadata`` (and
  PyPI's historic ``data-dist-info-metadata`` JSON key); a hash object without any hash
  means "available, hashes unknown" (True);
* PEP 792 status names are lower-cased; a ``quarantined`` page keeps its files (policy
  lives elsewhere);
* filenames are *not* checked for path safety here: that is the layout's job.

The root index can be huge (800,000 projects on PyPI), so :class:`IndexJsonParser` and
:class:`IndexHtmlParser` parse it incrementally with bounded memory.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Callable, Iterable
from html.parser import HTMLParser
from typing import Final, cast
from urllib.parse import unquote, urldefrag, urljoin, urlsplit

from packaging.utils import (
    InvalidName,
    InvalidSdistFilename,
    InvalidWheelFilename,
    NormalizedName,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from mirror.core.models import DistFile, Hashes, IndexEntry, IndexMeta, ProjectPage, ProjectStatus
from mirror.errors import UpstreamError

__all__ = [
    "MAX_ELEMENT_SIZE",
    "IndexHtmlParser",
    "IndexJsonParser",
    "derive_versions",
    "parse_project_html",
    "parse_project_json",
]

MAX_ELEMENT_SIZE: Final = 1 << 20
"""Largest single element of a streamed root index (a project entry, ``meta``, a tag), in characters."""

# Hex digest lengths of the hashlib algorithms a PEP 503 fragment may name.
_DIGEST_HEX_LENGTHS: Final[dict[str, int]] = {
    "md5": 32,
    "sha1": 40,
    "sha224": 56,
    "sha256": 64,
    "sha384": 96,
    "sha512": 128,
    "blake2b": 128,
    "blake2s": 64,
    "sha3_224": 56,
    "sha3_256": 64,
    "sha3_384": 96,
    "sha3_512": 128,
}
_HEX_RE: Final = re.compile(r"[0-9a-fA-F]+")
_API_VERSION_RE: Final = re.compile(r"([0-9]{1,9})\.([0-9]{1,9})")
# A project is a directory under web/simple/: a longer name cannot be written on any common filesystem.
MAX_NAME: Final = 255
_NORMALIZED_RE: Final = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_SERIAL_RE: Final = re.compile(r"SERIAL\s+([0-9]{1,18})")
_SUPPORTED_MAJOR: Final = 1


class _Invalid(Exception):
    """Internal: what is wrong, without saying where; the public entry points add the page."""


def _short(value: object, limit: int = 60) -> str:
    """A one-line, bounded repr of untrusted data for error messages."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not valid JSON")


def _normalize(name: object, what: str) -> NormalizedName:
    if not isinstance(name, str):
        raise _Invalid(f"{what} must be a string, not {type(name).__name__}")
    try:
        normalized = canonicalize_name(name.strip(), validate=True)
    except InvalidName:
        raise _Invalid(f"{what} is not a valid project name: {_short(name)}") from None
    if len(normalized) > MAX_NAME:
        raise _Invalid(f"{what} is longer than {MAX_NAME} characters: {_short(name)}")
    return normalized


def _api_version(value: object, what: str) -> str:
    if not isinstance(value, str) or (match := _API_VERSION_RE.fullmatch(value.strip())) is None:
        raise _Invalid(f"{what} is not a version number: {_short(value)}")
    if int(match.group(1)) != _SUPPORTED_MAJOR:
        raise _Invalid(f"unsupported api version {value.strip()} (only 1.x is understood)")
    return value.strip()


def _serial(value: object, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _Invalid(f"{what} must be a non-negative integer, not {_short(value)}")
    return value


def _digest(algorithm: str, digest: str, what: str) -> str:
    if _HEX_RE.fullmatch(digest) is None:
        raise _Invalid(f"{what}: {algorithm} digest is not hex: {_short(digest)}")
    expected = _DIGEST_HEX_LENGTHS.get(algorithm)
    if expected is not None and len(digest) != expected:
        raise _Invalid(f"{what}: {algorithm} digest has {len(digest)} hex digits, not {expected}")
    return digest.lower()


def _hashes(value: object, what: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise _Invalid(f"{what} must be an object of hash name to hex digest, not {type(value).__name__}")
    out: dict[str, str] = {}
    for name, digest in value.items():
        if not isinstance(digest, str):
            raise _Invalid(f"{what}: digest for {_short(name)} must be a string, not {_short(digest)}")
        algorithm = name.strip().lower()
        if not algorithm:
            raise _Invalid(f"{what}: empty hash name")
        checked = _digest(algorithm, digest.strip(), what)
        if out.setdefault(algorithm, checked) != checked:
            raise _Invalid(f"{what}: conflicting {algorithm} digests")
    return out


def _status(status: object, reason: object, what: str) -> ProjectStatus:
    if not isinstance(status, str) or not status.strip():
        raise _Invalid(f"{what} status must be a non-empty string, not {_short(status)}")
    if reason is not None and not isinstance(reason, str):
        raise _Invalid(f"{what} reason must be a string, not {_short(reason)}")
    return ProjectStatus(status=status.strip().lower(), reason=reason or None)


def _load_json(body: bytes) -> object:
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise _Invalid(f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except UnicodeDecodeError as exc:
        raise _Invalid(f"not UTF-8 ({exc.reason} at byte {exc.start})") from None
    except RecursionError:
        raise _Invalid("nesting too deep") from None
    except ValueError as exc:
        raise _Invalid(str(exc).splitlines()[0]) from None


def _join(base_url: str, link: str, what: str) -> str:
    """Resolve ``link`` against ``base_url`` and drop any fragment."""
    try:
        absolute = urljoin(base_url, link.strip())
    except ValueError:
        raise _Invalid(f"{what}: unusable URL {_short(link)}") from None
    return urldefrag(absolute).url


# --- PEP 691 JSON project page ---------------------------------------------------------------------


def parse_project_json(body: bytes, base_url: str) -> ProjectPage:
    """Parse a PEP 691 JSON project page (any api-version 1.x) fetched from ``base_url``."""
    try:
        return _project_from_json(_load_json(body), base_url)
    except _Invalid as exc:
        raise UpstreamError(f"invalid JSON project page {base_url}: {exc}") from None


def _project_from_json(data: object, base_url: str) -> ProjectPage:
    if not isinstance(data, dict):
        raise _Invalid(f"top level must be an object, not {type(data).__name__}")
    meta = data.get("meta")
    if not isinstance(meta, dict):
        raise _Invalid("meta must be an object")
    _api_version(meta.get("api-version"), "meta.api-version")
    last_serial = _serial(meta.get("_last-serial"), "meta._last-serial")
    name = _normalize(data.get("name"), "name")

    raw_files = data.get("files")
    if not isinstance(raw_files, list):
        raise _Invalid(f"files must be a list, not {type(raw_files).__name__}")
    files = tuple(_file_from_json(raw, base_url, index) for index, raw in enumerate(raw_files))

    raw_versions = data.get("versions")
    versions: tuple[str, ...] | None = None
    if raw_versions is not None:
        if not isinstance(raw_versions, list) or not all(isinstance(v, str) for v in raw_versions):
            raise _Invalid("versions must be a list of strings")
        versions = tuple(raw_versions)

    raw_status = data.get("project-status")
    status: ProjectStatus | None = None
    if raw_status is not None:
        if not isinstance(raw_status, dict):
            raise _Invalid("project-status must be an object")
        status = _status(raw_status.get("status"), raw_status.get("reason"), "project-status")

    return ProjectPage(name=name, files=files, versions=versions, last_serial=last_serial, status=status)


def _optional_text(value: object, what: str) -> str | None:
    """A string field where null and "" both mean unknown."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise _Invalid(f"{what} must be a string, not {_short(value)}")
    return value or None


def _file_from_json(raw: object, base_url: str, index: int) -> DistFile:
    what = f"files[{index}]"
    if not isinstance(raw, dict):
        raise _Invalid(f"{what} must be an object, not {type(raw).__name__}")
    filename = raw.get("filename")
    if not isinstance(filename, str) or not filename:
        raise _Invalid(f"{what}.filename must be a non-empty string")
    what = f"file {_short(filename)}"
    url = raw.get("url")
    if not isinstance(url, str) or not url.strip():
        raise _Invalid(f"{what}: url must be a non-empty string")
    if "hashes" not in raw:
        raise _Invalid(f"{what}: hashes missing")
    hashes = _hashes(raw["hashes"], f"{what}: hashes")

    size = raw.get("size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
        raise _Invalid(f"{what}: size must be a non-negative integer, not {_short(size)}")

    yanked = raw.get("yanked")
    if yanked is None:
        yanked = False
    elif not isinstance(yanked, bool | str):
        raise _Invalid(f"{what}: yanked must be a boolean or a string, not {_short(yanked)}")
    elif yanked == "":
        yanked = True

    return DistFile(
        filename=filename,
        url=_join(base_url, url, what),
        hashes=hashes,
        requires_python=_optional_text(raw.get("requires-python"), f"{what}: requires-python"),
        size=size,
        upload_time=_optional_text(raw.get("upload-time"), f"{what}: upload-time"),
        yanked=yanked,
        core_metadata=_core_metadata_json(raw, what),
    )


_CORE_METADATA_KEYS: Final = ("core-metadata", "dist-info-metadata", "data-dist-info-metadata")


def _core_metadata_json(raw: dict[str, object], what: str) -> bool | Hashes:
    for key in _CORE_METADATA_KEYS:
        value = raw.get(key)
        if value is None:
            continue
        if isinstance(value, bool):
            return value
        if isinstance(value, dict):
            return _hashes(value, f"{what}: {key}") or True
        raise _Invalid(f"{what}: {key} must be a boolean or an object of hashes, not {_short(value)}")
    return False


# --- PEP 503 HTML ------------------------------------------------------------------------------------


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
        _guard(lambda: self.feed(text))
        if len(self.rawdata) > MAX_ELEMENT_SIZE:
            raise _Invalid("unterminated markup larger than 1 MiB")

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


def _decode_html(body: bytes) -> str:
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _Invalid(f"not UTF-8 ({exc.reason} at byte {exc.start})") from None


def _html_api_version(value: str | None) -> str:
    return "1.0" if value is None else _api_version(value, "pypi:repository-version")


def parse_project_html(body: bytes, base_url: str, name: str) -> ProjectPage:
    """Parse a PEP 503 HTML project page fetched from ``base_url`` for project ``name``."""
    try:
        return _project_from_html(body, base_url, name)
    except _Invalid as exc:
        raise UpstreamError(f"invalid HTML project page {base_url}: {exc}") from None


def _project_from_html(body: bytes, base_url: str, name: str) -> ProjectPage:
    project = _normalize(name, "project name")
    anchors: list[Attrs] = []
    parser = _SimpleHTML(lambda attrs, _text: anchors.append(attrs), collect_text=False)
    parser.feed_checked(_decode_html(body))
    parser.finish()
    _html_api_version(parser.api_version)
    base = base_url if parser.base_href is None else _join(base_url, parser.base_href, "<base href>")
    files = tuple(dist for attrs in anchors if (dist := _file_from_anchor(attrs, base)) is not None)
    status = None
    if parser.status is not None:
        status = _status(parser.status, parser.status_reason, "pypi:project-status")
    return ProjectPage(name=project, files=files, versions=None, last_serial=parser.serial, status=status)


def _file_from_anchor(attrs: Attrs, base_url: str) -> DistFile | None:
    href = attrs.get("href")
    if href is None:
        return None
    try:
        url, fragment = urldefrag(urljoin(base_url, href.strip()))
        path = urlsplit(url).path
    except ValueError:
        raise _Invalid(f"unusable link {_short(href)}") from None
    # PEP 503: the filename is the last path segment of the URL (pip reads it the same way).
    filename = unquote(path.rpartition("/")[2])
    if not filename:
        return None  # not a file link (e.g. a link to a directory or to this page)
    what = f"link {_short(filename)}"
    hashes: dict[str, str] = {}
    for part in fragment.split("&"):
        key, sep, value = part.partition("=")
        algorithm = key.strip().lower()
        if sep and algorithm in _DIGEST_HEX_LENGTHS and algorithm not in hashes:
            hashes[algorithm] = _digest(algorithm, value.strip(), what)
    yanked: bool | str = False
    if "data-yanked" in attrs:
        yanked = attrs["data-yanked"] or True
    return DistFile(
        filename=filename,
        url=url,
        hashes=hashes,
        requires_python=attrs.get("data-requires-python") or None,
        yanked=yanked,
        core_metadata=_core_metadata_html(attrs, what),
    )


def _core_metadata_html(attrs: Attrs, what: str) -> bool | Hashes:
    for key in ("data-core-metadata", "data-dist-info-metadata"):
        value = (attrs.get(key) or "").strip()
        if not value:
            continue  # absent, or present without a value: as if absent
        if value.lower() == "true":
            return True
        if value.lower() == "false":
            return False
        algorithm, sep, digest = value.partition("=")
        algorithm = algorithm.strip().lower()
        if not sep or not algorithm:
            raise _Invalid(f"{what}: {key} must be 'true' or '<hash>=<hex>', not {_short(value)}")
        return {algorithm: _digest(algorithm, digest.strip(), f"{what}: {key}")}
    return False


# --- versions --------------------------------------------------------------------------------------


def derive_versions(files: Iterable[DistFile]) -> tuple[str, ...]:
    """The versions of wheel and sdist filenames (others skipped), unique, in PEP 440 order."""
    found: dict[str, Version] = {}
    for dist in files:
        try:
            if dist.filename.endswith(".whl"):
                version = parse_wheel_filename(dist.filename)[1]
            else:
                version = parse_sdist_filename(dist.filename)[1]
        except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion):
            continue
        found.setdefault(str(version), version)
    return tuple(sorted(found, key=lambda text: (found[text], text)))


# --- the root index, incrementally -----------------------------------------------------------------

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


class Skipped:
    """Root index entries refused one by one (a bad name must not cost the other 800,000)."""

    KEEP = 20

    def __init__(self) -> None:
        self.count = 0
        self.examples: list[str] = []

    def note(self, message: str) -> None:
        self.count += 1
        if len(self.examples) < self.KEEP:
            self.examples.append(message)


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

    def feed(self, chunk: bytes) -> list[IndexEntry]:
        """Consume the next chunk; return the projects it completed."""
        self._check_usable()
        try:
            text = self._utf8.decode(chunk)
        except UnicodeDecodeError as exc:
            raise self._fail(f"not UTF-8 ({exc.reason})") from None
        self._buf = self._buf + text if self._buf else text
        out: list[IndexEntry] = []
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
            raise self._fail("meta missing")
        return self._meta

    def _check_usable(self) -> None:
        if self._error is not None:
            raise self._error
        if self._closed:
            raise RuntimeError("IndexJsonParser is closed")

    def _fail(self, message: str) -> UpstreamError:
        self._error = UpstreamError(f"invalid JSON root index: {message}")
        return self._error

    def _run(self, out: list[IndexEntry]) -> None:
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
                    if char != "{":
                        where = self._at(pos)
                        raise _Invalid(f"projects[{self._items}] must be an object at character {where}")
                    taken = self._take(buf, pos)
                    if taken is None:
                        break
                    value, pos = taken
                    try:
                        out.append(_index_entry(cast("dict[str, object]", value), self._items))  # '{' decoded
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
                        self._meta = _index_meta(value)
                    self._state = _AFTER_VALUE
                else:
                    raise _Invalid(f"expected {_EXPECTED[state]} at character {self._at(pos)}, found {_short(char)}")
        finally:
            self._buf = buf[pos:]
            self._offset += pos

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


def _index_meta(value: object) -> IndexMeta:
    if not isinstance(value, dict):
        raise _Invalid("meta must be an object")
    return IndexMeta(
        api_version=_api_version(value.get("api-version"), "meta.api-version"),
        last_serial=_serial(value.get("_last-serial"), "meta._last-serial"),
    )


def _index_entry(value: dict[str, object], index: int) -> IndexEntry:
    name = value.get("name")
    serial = value.get("_last-serial")
    # Fast path for the common case (800,000 times on PyPI): already normalized, plain serial.
    if type(name) is not str or len(name) > MAX_NAME or _NORMALIZED_RE.fullmatch(name) is None:
        name = _normalize(name, f"projects[{index}].name")
    if type(serial) is not int or serial < 0:
        serial = _serial(serial, f"projects[{index}]._last-serial")
    return IndexEntry(name=NormalizedName(name), serial=serial)


class IndexHtmlParser:
    """Incremental parser of a PEP 503 HTML root index, with the interface of :class:`IndexJsonParser`.

    Each anchor with an ``href`` is a project: its text (or else the last path segment of its
    ``href``) is the name. Serials are unknown per project; ``close()`` returns the PEP 629
    ``pypi:repository-version`` (default 1.0) and the ``<!--SERIAL n-->`` comment if present, and
    raises UpstreamError if the document never reached ``</body>`` or ``</html>`` (truncated).
    """

    def __init__(self) -> None:
        self._utf8 = codecs.getincrementaldecoder("utf-8-sig")()
        self._pending: list[IndexEntry] = []
        self.skipped = Skipped()
        self._parser = _SimpleHTML(self._on_anchor, collect_text=True)
        self._error: UpstreamError | None = None
        self._closed = False

    def feed(self, chunk: bytes) -> list[IndexEntry]:
        """Consume the next chunk; return the projects it completed."""
        self._check_usable()
        try:
            text = self._utf8.decode(chunk)
        except UnicodeDecodeError as exc:
            raise self._fail(f"not UTF-8 ({exc.reason})") from None
        try:
            self._parser.feed_checked(text)
        except _Invalid as exc:
            raise self._fail(str(exc)) from None
        out, self._pending = self._pending, []
        return out

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
            if self._pending or not self._parser.ended:
                raise _Invalid("document ends early (no </body> or </html>)")
            api_version = _html_api_version(self._parser.api_version)
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
        name = text.strip()
        if not name:
            try:
                path = urlsplit(href.strip()).path
            except ValueError:
                raise _Invalid(f"unusable link {_short(href)}") from None
            name = unquote(path.rstrip("/").rpartition("/")[2])
        if not name:
            return
        try:
            self._pending.append(IndexEntry(name=_normalize(name, "project name")))
        except _Invalid as exc:
            self.skipped.note(str(exc))
