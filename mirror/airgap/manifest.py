"""The lines of a bundle manifest, parsed strictly: every field typed and ranged, every path safe.

Pure (bytes in, typed values out, no I/O): a manifest comes from whoever handed over the USB stick,
so each line is refused with :class:`BundleRefused` (exit 2, nothing applied) unless it is exactly
what ``mirror export`` writes. No other exception ever leaves this module
(fuzzed: ``tests/unit/test_manifest_fuzz.py``).

- The header's ``id`` names the staging directory and every part file, so it is a single plain
  name; each part is named ``<id>.part-NNNN.tar`` (``.tar.gz``), nothing else.
- Every path goes through :func:`mirror.core.layout.safe_segment` (no control characters, no
  hidden or relative names, at most 255 bytes a segment) and must be a place the layout uses:
  ``packages/<dirs>/<file>``, the root pages ``simple/index.*`` or a project's pages
  ``simple/<normalized name>/index.*``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mirror.core import layout
from mirror.errors import BundleRefused, UnsafeName

FORMAT = "mirror-bundle/1"
MAX_LINE = 1 << 20
"""Longest manifest line read (bytes); a longer one is refused, never buffered whole."""
MAX_PATH = 2048
"""Longest path under ``web/`` (bytes): staged under ``state/import/<id>/`` it stays well inside PATH_MAX."""
MAX_PARTS = 100_000
MAX_INT = (1 << 63) - 1
"""Counts, sizes and serials are SQLite integers."""
_MAX_DEPTH = 16
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
_MAX_NAME = 128
_HEX = frozenset("0123456789abcdef")
_CREATED = "%Y-%m-%dT%H:%M:%SZ"
COMPRESSION_SUFFIX = {"none": ".tar", "gzip": ".tar.gz"}
_HEADER_KEYS = frozenset(
    {"format", "id", "origin", "previous", "full", "seq", "from_serial", "to_serial", "created", "compression"}
    | {"parts", "files", "bytes", "deletions"}
)
_PART_KEYS = frozenset({"name", "size", "sha256"})
_FILE_KEYS = frozenset({"path", "size", "sha256", "project"})


@dataclass(frozen=True, slots=True)
class Part:
    name: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class Header:
    id: str
    """Also the bundle's file name stem: ``mirror-<UTC time>-<random>``."""
    origin: str
    """The id of the mirror that exported it; a tree imports from one origin only."""
    previous: str | None
    full: bool
    seq: int
    """How far along the origin's change log the bundle brings a tree."""
    from_serial: int | None
    to_serial: int | None
    created: str
    compression: str
    parts: tuple[Part, ...]
    files: int
    bytes: int
    deletions: int

    def to_json(self) -> str:
        data: dict[str, Any] = {"format": FORMAT}
        for key in self.__slots__:
            value = getattr(self, key)
            data[key] = [_part_json(p) for p in value] if key == "parts" else value
        return json.dumps(data, separators=(",", ":"))

    @property
    def created_at(self) -> float:
        """``created`` as a UNIX time (validated when the header was parsed)."""
        return datetime.strptime(self.created + "+0000", _CREATED + "%z").timestamp()


@dataclass(frozen=True, slots=True)
class FileEntry:
    """A file or page to publish; files appear in the tar stream in the order of these lines."""

    path: str
    size: int
    sha256: str
    project: str | None

    def to_json(self) -> str:
        return _dumps({"path": self.path, "size": self.size, "sha256": self.sha256, "project": self.project})


@dataclass(frozen=True, slots=True)
class Deletion:
    path: str

    def to_json(self) -> str:
        return _dumps({"delete": self.path})


@dataclass(frozen=True, slots=True)
class ProjectSerial:
    """A project whose pages the bundle carries, and its serial."""

    project: str
    serial: int | None

    def to_json(self) -> str:
        return _dumps({"project": self.project, "serial": self.serial})


@dataclass(frozen=True, slots=True)
class Forget:
    """A project the exporting mirror removed."""

    project: str

    def to_json(self) -> str:
        return _dumps({"forget": self.project})


Entry = FileEntry | Deletion | ProjectSerial | Forget


def _part_json(part: Part) -> dict[str, Any]:
    return {"name": part.name, "size": part.size, "sha256": part.sha256}


def part_names(bundle_id: str, compression: str, count: int) -> list[str]:
    """The names ``mirror export`` gives a bundle's parts, in stream order."""
    suffix = COMPRESSION_SUFFIX[compression]
    return [f"{bundle_id}.part-{number:04d}{suffix}" for number in range(1, count + 1)]


def parse_header(line: bytes, where: str) -> Header:
    """The header line (without its newline), or :class:`BundleRefused` naming what is wrong."""
    data = _load(line, f"{where}: header")
    if not isinstance(data, dict):
        raise BundleRefused(f"{where}: not a {FORMAT} manifest")
    if data.get("format") != FORMAT:
        raise BundleRefused(f"{where}: not a {FORMAT} manifest (format {_show(data.get('format'))})")
    _keys(data, _HEADER_KEYS, f"{where}: header")
    context = f"{where}: header field"
    bundle_id = bundle_name(data["id"], f"{context} id")
    compression = data["compression"]
    if not isinstance(compression, str) or compression not in COMPRESSION_SUFFIX:
        raise BundleRefused(f"{context} compression must be one of {', '.join(COMPRESSION_SUFFIX)}")
    previous = None if data["previous"] is None else bundle_name(data["previous"], f"{context} previous")
    if previous == bundle_id:
        raise BundleRefused(f"{context} previous names the bundle itself")
    return Header(
        id=bundle_id,
        origin=bundle_name(data["origin"], f"{context} origin"),
        previous=previous,
        full=_bool(data["full"], f"{context} full"),
        seq=_count(data["seq"], f"{context} seq"),
        from_serial=_optional_count(data["from_serial"], f"{context} from_serial"),
        to_serial=_optional_count(data["to_serial"], f"{context} to_serial"),
        created=_created(data["created"], f"{context} created"),
        compression=compression,
        parts=_parts(data["parts"], bundle_id, compression, f"{context} parts"),
        files=_count(data["files"], f"{context} files"),
        bytes=_count(data["bytes"], f"{context} bytes"),
        deletions=_count(data["deletions"], f"{context} deletions"),
    )


def parse_entry(line: bytes, where: str) -> Entry:
    """One entry line (without its newline); ``where`` names the manifest and line number."""
    data = _load(line, where)
    if not isinstance(data, dict):
        raise BundleRefused(f"{where}: not a manifest entry")
    if "path" in data:
        _keys(data, _FILE_KEYS, where)
        project = data["project"]
        return FileEntry(
            path=safe_path(data["path"], where),
            size=_count(data["size"], f"{where}: size"),
            sha256=_sha256(data["sha256"], f"{where}: sha256"),
            project=None if project is None else _project(project, where),
        )
    if "delete" in data:
        _keys(data, frozenset({"delete"}), where)
        return Deletion(safe_path(data["delete"], where))
    if "forget" in data:
        _keys(data, frozenset({"forget"}), where)
        return Forget(_project(data["forget"], where))
    if "project" in data:
        _keys(data, frozenset({"project", "serial"}), where)
        return ProjectSerial(_project(data["project"], where), _optional_count(data["serial"], f"{where}: serial"))
    raise BundleRefused(f"{where}: not a manifest entry (keys {_show(sorted(data))})")


def safe_path(value: object, where: str) -> str:
    """A path under ``web/`` the layout can hold, made only of safe segments."""
    if not isinstance(value, str):
        raise BundleRefused(f"{where}: path must be a string, not {_kind(value)}")
    if len(_utf8(value, f"{where}: path")) > MAX_PATH:
        raise BundleRefused(f"{where}: refusing path longer than {MAX_PATH} bytes: {_show(value)}")
    segments = value.split("/")
    try:
        for segment in segments:
            layout.safe_segment(segment)
    except UnsafeName as exc:
        raise BundleRefused(f"{where}: {exc}") from None
    if not _placed(segments):
        raise BundleRefused(f"{where}: refusing path {_show(value)}: not a page or a file under packages/")
    return value


def _placed(segments: list[str]) -> bool:
    """Whether the layout puts a file at these segments (a page, or a file somewhere under packages/)."""
    top, rest = segments[0], segments[1:]
    if top == layout.PACKAGES:
        return 1 <= len(rest) <= _MAX_DEPTH
    if top != layout.SIMPLE:
        return False
    if len(rest) == 1:
        return rest[0] in layout.PAGE_FILES
    return len(rest) == 2 and _is_project(rest[0]) and rest[1] in layout.PAGE_FILES


def bundle_name(value: object, what: str) -> str:
    """A bundle or mirror id: one plain name (letters, digits, ``.``, ``_``, ``-``), never a path."""
    if not isinstance(value, str):
        raise BundleRefused(f"{what} must be a string, not {_kind(value)}")
    if not (0 < len(value) <= _MAX_NAME and set(value) <= _NAME_CHARS and value[0] not in ".-"):
        raise BundleRefused(f"{what} must be a plain name (at most {_MAX_NAME} of A-Z a-z 0-9 . _ -): {_show(value)}")
    return value


def _parts(value: object, bundle_id: str, compression: str, what: str) -> tuple[Part, ...]:
    if not isinstance(value, list) or not 0 < len(value) <= MAX_PARTS:
        raise BundleRefused(f"{what} must be a list of 1 to {MAX_PARTS} parts")
    parts = []
    names = part_names(bundle_id, compression, len(value))
    for number, (raw, name) in enumerate(zip(value, names, strict=True), start=1):
        if not isinstance(raw, dict):
            raise BundleRefused(f"{what}: part {number} is {_kind(raw)}, not an object")
        _keys(raw, _PART_KEYS, f"{what}: part {number}")
        if raw["name"] != name:
            raise BundleRefused(f"{what}: part {number} must be named {name}, not {_show(raw['name'])}")
        parts.append(Part(name, _count(raw["size"], f"{what}: part {number} size"), _sha256(raw["sha256"], what)))
    return tuple(parts)


def _load(line: bytes, where: str) -> object:
    try:
        return json.loads(line.decode("utf-8"), object_pairs_hook=_unique, parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise BundleRefused(f"{where}: not UTF-8") from None
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, a 5000-digit number, [[[[...]]]]
        raise BundleRefused(f"{where}: not JSON ({str(exc)[:80]})") from None


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data = dict(pairs)
    if len(data) != len(pairs):
        raise ValueError("a key appears twice")
    return data


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _keys(data: dict[str, Any], expected: frozenset[str], where: str) -> None:
    missing, extra = expected - data.keys(), data.keys() - expected
    if missing:
        raise BundleRefused(f"{where}: missing {', '.join(sorted(missing))}")
    if extra:
        raise BundleRefused(f"{where}: unknown field {_show(sorted(extra)[0])}")


def _count(value: object, what: str) -> int:
    if type(value) is not int:  # bool is an int subclass and is refused too
        raise BundleRefused(f"{what} must be an integer, not {_kind(value)}")
    if not 0 <= value <= MAX_INT:
        raise BundleRefused(f"{what} is out of range (0 to 2**63-1)")
    return value


def _optional_count(value: object, what: str) -> int | None:
    return None if value is None else _count(value, what)


def _bool(value: object, what: str) -> bool:
    if not isinstance(value, bool):
        raise BundleRefused(f"{what} must be true or false, not {_kind(value)}")
    return value


def _sha256(value: object, what: str) -> str:
    if not (isinstance(value, str) and len(value) == 64 and set(value) <= _HEX):
        raise BundleRefused(f"{what} must be 64 lowercase hex digits: {_show(value)}")
    return value


def _created(value: object, what: str) -> str:
    if isinstance(value, str) and len(value) == len("2026-01-01T00:00:00Z") and value.isascii():
        try:
            datetime.strptime(value, _CREATED)
            return value
        except ValueError:
            pass
    raise BundleRefused(f"{what} must be a UTC time like 2026-03-01T02:00:00Z: {_show(value)}")


def _project(value: object, where: str) -> str:
    if not (isinstance(value, str) and _is_project(value)):
        raise BundleRefused(f"{where}: refusing project name {_show(value)} (must be a normalized name)")
    return value


def _is_project(name: str) -> bool:
    try:
        return layout.project_name(name) == name
    except UnsafeName:
        return False


def _utf8(value: str, what: str) -> bytes:
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a \udXXX escape: no file system name
        raise BundleRefused(f"{what}: not valid Unicode: {_show(value)}") from None


def _dumps(data: dict[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"))


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _show(value: object) -> str:
    """A bounded, escaped rendering of an untrusted value for a one-line message."""
    if isinstance(value, str):
        text = ascii(value[:80])
    elif value is None or isinstance(value, (bool, int, float)):
        text = ascii(value)
    else:  # a list or an object: its type says enough, and its repr could be deep or huge
        return _kind(value)
    return text if len(text) <= 80 else text[:77] + "..."
