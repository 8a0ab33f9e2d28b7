"""The airgap bundle format: one tar stream cut into parts, and a JSON-lines manifest beside it.

``<name>.manifest.jsonl`` holds a header line (ids, chain, serial range, parts with size and
sha256) and then one line per entry, in the order the files appear in the tar stream:
``{"path", "size", "sha256", "project"}`` for a file or page to publish, ``{"delete": path}``,
``{"project": name, "serial": n}`` for a project whose pages are in the bundle, ``{"forget": name}``
for a removed project. The parts ``<name>.part-0001.tar`` … are the tar stream cut at
``--split-size`` bytes: ``cat <name>.part-* | tar -x`` unpacks a bundle by hand.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from mirror.errors import BundleRefused, ConfigError, EnvironmentFault

FORMAT = "mirror-bundle/1"
MANIFEST_SUFFIX = ".manifest.jsonl"
_PART = re.compile(r"^(?P<name>.+)\.part-\d{4}\.tar(\.gz)?$")
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
MIN_SPLIT = 1 << 16
_MAX_LINE = 1 << 20


def parse_size(text: str) -> int:
    """``4G``, ``650M``, ``512K`` or plain bytes (binary units)."""
    match = re.fullmatch(r"\s*(\d+)\s*([KMGT]?)i?B?\s*", text, re.IGNORECASE)
    if match is None:
        raise ConfigError(f"--split-size: {text!r} is not a size like 4G, 650M or 1048576")
    size = int(match[1]) * _UNITS[match[2].upper()]
    if size < MIN_SPLIT:
        raise ConfigError(f"--split-size: {text!r} is below the smallest part size ({MIN_SPLIT // 1024}K)")
    return size


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
            data[key] = [vars_of(p) for p in value] if key == "parts" else value
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, line: str, where: Path) -> Header:
        try:
            data = json.loads(line)
            if data.pop("format") != FORMAT:
                raise BundleRefused(f"{where}: not a {FORMAT} manifest")
            data["parts"] = tuple(Part(**p) for p in data["parts"])
            return cls(**data)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise BundleRefused(f"{where}: unreadable bundle manifest ({exc})") from None


def vars_of(part: Part) -> dict[str, Any]:
    return {"name": part.name, "size": part.size, "sha256": part.sha256}


def manifest_for(path: Path) -> Path:
    """The manifest a PATH names: the manifest itself, or the one beside a part."""
    if path.name.endswith(MANIFEST_SUFFIX):
        return path
    match = _PART.match(path.name)
    if match is None:
        raise BundleRefused(f"{path}: neither a bundle manifest (*{MANIFEST_SUFFIX}) nor a bundle part")
    manifest = path.with_name(match["name"] + MANIFEST_SUFFIX)
    if not manifest.is_file():
        raise BundleRefused(f"{path}: its manifest {manifest.name} is missing")
    return manifest


def find_manifests(paths: list[Path]) -> list[Path]:
    found: dict[Path, None] = {}
    for path in paths:
        if path.is_dir():
            found.update(dict.fromkeys(sorted(path.glob("*" + MANIFEST_SUFFIX))))
        elif path.exists():
            found[manifest_for(path)] = None
        else:
            raise BundleRefused(f"{path}: no such bundle, part or directory")
    if not found:
        raise BundleRefused("no bundle manifests (*" + MANIFEST_SUFFIX + ") in " + ", ".join(map(str, paths)))
    return list(found)


def read_header(manifest: Path) -> Header:
    try:
        with open(manifest, encoding="utf-8") as handle:
            return Header.from_json(handle.readline(_MAX_LINE), manifest)
    except OSError as exc:
        raise BundleRefused(f"{manifest}: cannot read ({exc.strerror})") from None


def read_entries(manifest: Path) -> Iterator[dict[str, Any]]:
    """The manifest's entry lines, streamed (a full bundle of PyPI lists millions)."""
    with open(manifest, encoding="utf-8") as handle:
        handle.readline(_MAX_LINE)
        for number, line in enumerate(handle, start=2):
            try:
                entry = json.loads(line)
            except ValueError:
                raise BundleRefused(f"{manifest}: line {number} is not JSON") from None
            if not isinstance(entry, dict):
                raise BundleRefused(f"{manifest}: line {number} is not an entry")
            yield entry


class PartWriter:
    """A write-only stream that cuts what it is given into part files of at most ``limit`` bytes."""

    def __init__(self, directory: Path, name: str, suffix: str, limit: int) -> None:
        self._directory, self._name, self._suffix, self._limit = directory, name, suffix, limit
        self.parts: list[Part] = []
        self._handle: IO[bytes] | None = None
        self._digest = hashlib.sha256()
        self._size = 0

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        while view:
            if self._handle is None or self._size >= self._limit:
                self._roll()
            assert self._handle is not None
            take = min(len(view), self._limit - self._size)
            try:
                self._handle.write(view[:take])
            except OSError as exc:
                raise EnvironmentFault(f"cannot write bundle part: {exc.strerror or exc}") from None
            self._digest.update(view[:take])
            self._size += take
            view = view[take:]
        return len(data)

    def _roll(self) -> None:
        self._close_part()
        path = self._directory / f"{self._name}.part-{len(self.parts) + 1:04d}{self._suffix}"
        try:
            self._handle = open(path, "wb")  # noqa: SIM115 - closed when the part is full or in close()
        except OSError as exc:
            raise EnvironmentFault(f"cannot write {path}: {exc.strerror}") from None
        self._digest, self._size = hashlib.sha256(), 0

    def _close_part(self) -> None:
        if self._handle is None:
            return
        self._handle.close()
        name = Path(self._handle.name).name
        self.parts.append(Part(name, self._size, self._digest.hexdigest()))
        self._handle = None

    def close(self) -> None:
        if self._handle is None and not self.parts:
            self._roll()  # an empty stream is still one (empty) part
        self._close_part()

    def remove(self) -> None:
        """Drop every part written so far (an export that failed halfway)."""
        names = [part.name for part in self.parts]
        if self._handle is not None:
            names.append(Path(self._handle.name).name)
            self._handle.close()
            self._handle = None
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                (self._directory / name).unlink()


class PartReader:
    """Reads a bundle's parts as one stream, after checking each part's size and sha256."""

    def __init__(self, directory: Path, header: Header) -> None:
        self._paths = [directory / p.name for p in header.parts]
        self._index = 0
        self._handle: IO[bytes] | None = None

    def read(self, size: int = -1) -> bytes:
        while self._index < len(self._paths):
            if self._handle is None:
                self._handle = open(self._paths[self._index], "rb")  # noqa: SIM115 - closed at its end
            data = self._handle.read(size if size >= 0 else -1)
            if data:
                return data
            self._handle.close()
            self._handle = None
            self._index += 1
        return b""

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def check_parts(directory: Path, header: Header) -> None:
    """Refuse a bundle with a missing, truncated or altered part, before reading any of it."""
    for part in header.parts:
        path = directory / part.name
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise BundleRefused(f"bundle {header.id} is missing its part {part.name}") from None
        if size != part.size:
            raise BundleRefused(f"bundle {header.id}: part {part.name} is {size} bytes, expected {part.size}")
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
        if digest.hexdigest() != part.sha256:
            raise BundleRefused(f"bundle {header.id}: part {part.name} does not match its sha256 (altered)")
