"""Field checks shared by every parser: names, serials, api versions, hashes, URLs; one error type."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Final
from urllib.parse import urldefrag, urljoin

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

from mirror.core.models import DistFile, ProjectStatus

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
MAX_FILES: Final = 100_000
"""Default bound on the links of one project page (PyPI's largest, ddtrace, lists about 47,000 files)."""
# A JSON file entry is at most 4 objects (itself, hashes, core-metadata, data-dist-info-metadata),
# and the page adds 3 (top, meta, project-status).
_OBJECTS_PER_FILE: Final = 4
_PAGE_OBJECTS: Final = 3
_NORMALIZED_RE: Final = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_SERIAL_RE: Final = re.compile(r"SERIAL\s+([0-9]{1,18})")
# A serial as text (bandersnatch 8.2 and PyPI proxies send ``"_last-serial": "37059094"``): decimal,
# bounded so that no upstream can hand the state database an integer SQLite cannot store.
_SERIAL_TEXT_RE: Final = re.compile(r"[0-9]{1,18}")
_MAX_SERIAL: Final = 10**18 - 1
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


def _liberal_api_version(value: object, what: str, dropped: Skipped) -> str:
    """The api-version; missing or unreadable means 1.0 (dropped, noted). Another major version fails."""
    if value is None:
        return "1.0"
    if isinstance(value, str) and (match := _API_VERSION_RE.fullmatch(value.strip())) is not None:
        if int(match.group(1)) != _SUPPORTED_MAJOR:
            raise _Invalid(f"unsupported api version {value.strip()} (only 1.x is understood)")
        return value.strip()
    dropped.note(f"{what} is not a version number: {_short(value)} (read as 1.0)")
    return "1.0"


def parse_serial(value: object) -> int | None:
    """A serial given as a non-negative integer or a decimal string (bounded); None if it is neither."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 <= value <= _MAX_SERIAL else None
    if isinstance(value, str) and _SERIAL_TEXT_RE.fullmatch(text := value.strip()) is not None:
        return int(text)
    return None


def _serial(value: object, what: str, dropped: Skipped) -> int | None:
    """A serial, or None when absent; an unusable one is dropped (noted), never fatal."""
    if value is None:
        return None
    serial = parse_serial(value)
    if serial is None:
        dropped.note(f"{what} is not a non-negative integer: {_short(value)}")
    return serial


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


def _hashed_link(base_url: str, link: str, what: str) -> tuple[str, dict[str, str]]:
    """Resolve ``link``; the PEP 503 ``#<hash>=<hex>`` fragment becomes hashes (others ignored)."""
    try:
        url, fragment = urldefrag(urljoin(base_url, link.strip()))
    except ValueError:
        raise _Invalid(f"{what}: unusable URL {_short(link)}") from None
    hashes: dict[str, str] = {}
    for part in fragment.split("&"):
        key, sep, value = part.partition("=")
        algorithm = key.strip().lower()
        if sep and algorithm in _DIGEST_HEX_LENGTHS and algorithm not in hashes:
            hashes[algorithm] = _digest(algorithm, value.strip(), what)
    return url, hashes


# An absolute http(s) URL of plain ASCII with no query, parameters, fragment or whitespace: what
# urljoin and urldefrag give back for it is the URL itself (tests/unit/test_url_fuzz.py checks it),
# and it is nearly every file URL of a real page. A match costs a fifth of those two calls (3% of a sync).
_PLAIN_ABSOLUTE = re.compile(r"https?://[A-Za-z0-9.\-]+(?::[0-9]+)?/[A-Za-z0-9\-._~!$&'()*+,=:@/%]*")


def _join(base_url: str, link: str, what: str) -> str:
    """Resolve ``link`` against ``base_url`` and drop any fragment."""
    link = link.strip()
    if _PLAIN_ABSOLUTE.fullmatch(link):
        return link
    try:
        absolute = urljoin(base_url, link)
    except ValueError:
        raise _Invalid(f"{what}: unusable URL {_short(link)}") from None
    return urldefrag(absolute).url


class Skipped:
    """What a parser refused or dropped, one note each: counted, the first few kept as examples.

    Root index entries are refused one by one (a bad name must not cost the other 800,000); optional
    fields a page gets wrong are dropped one by one (the page is still used without them).
    """

    KEEP = 20

    def __init__(self) -> None:
        self.count = 0
        self.examples: list[str] = []

    def note(self, message: str) -> None:
        self.count += 1
        if len(self.examples) < self.KEEP:
            self.examples.append(message)

    def lines(self) -> tuple[str, ...]:
        """The kept examples, and how many more there were."""
        more = self.count - len(self.examples)
        return (*self.examples, f"... and {more} more") if more > 0 else tuple(self.examples)


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


def _too_many_files(max_files: int) -> _Invalid:
    return _Invalid(f"lists more than {max_files} files (max-page-files)")


def _check_json_size(body: bytes, max_files: int) -> None:
    """Refuse, before parsing, a JSON page that could hold more than ``max_files`` files.

    Every object costs memory once parsed (a 100 MB page of a million links took gigabytes);
    ``{`` cannot be escaped outside a string, so its count is a cheap upper bound on the
    objects ``json.loads`` would build.
    """
    if body.count(b"{") > _OBJECTS_PER_FILE * max_files + _PAGE_OBJECTS:
        raise _too_many_files(max_files)
