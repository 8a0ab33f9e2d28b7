"""The airgap bundle format: one tar stream cut into parts, and a JSON-lines manifest beside it.

``<name>.manifest.jsonl`` holds a header line (ids, chain, serial range, parts with size and
sha256) and then one line per entry, in the order the files appear in the tar stream:
``{"path", "size", "sha256", "project"}`` for a file or page to publish, ``{"delete": path}``,
``{"project": name, "serial": n}`` for a project whose pages are in the bundle, ``{"forget": name}``
for a removed project. The parts ``<name>.part-0001.tar`` … are the tar stream cut at
``--split-size`` bytes: ``cat <name>.part-* | tar -x`` unpacks a bundle by hand.

Lines are parsed by :mod:`mirror.airgap.manifest`; this module reads them (bounded) from files that
must be regular files, and reads parts, which must also be regular files and never symlinks.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from mirror.airgap.manifest import MAX_LINE, Entry, Header, Part, parse_entry, parse_header
from mirror.errors import BundleRefused, ConfigError, EnvironmentFault

MANIFEST_SUFFIX = ".manifest.jsonl"
_PART = re.compile(r"^(?P<name>.+)\.part-\d{4}\.tar(\.gz)?$")
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
MIN_SPLIT = 1 << 16


def parse_size(text: str) -> int:
    """``4G``, ``650M``, ``512K`` or plain bytes (binary units)."""
    match = re.fullmatch(r"\s*(\d+)\s*([KMGT]?)i?B?\s*", text, re.IGNORECASE)
    if match is None:
        raise ConfigError(f"--split-size: {text!r} is not a size like 4G, 650M or 1048576")
    size = int(match[1]) * _UNITS[match[2].upper()]
    if size < MIN_SPLIT:
        raise ConfigError(f"--split-size: {text!r} is below the smallest part size ({MIN_SPLIT // 1024}K)")
    return size


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
    with open_regular(manifest) as handle:
        line = _line(handle, manifest, 1)
    if line is None:
        raise BundleRefused(f"{manifest}: empty, not a bundle manifest")
    return parse_header(line, str(manifest))


def read_entries(manifest: Path) -> Iterator[Entry]:
    """The manifest's entry lines, parsed and checked one by one (a full bundle of PyPI lists millions)."""
    with open_regular(manifest) as handle:
        _line(handle, manifest, 1)  # the header
        number = 2
        while (line := _line(handle, manifest, number)) is not None:
            yield parse_entry(line, f"{manifest}: line {number}")
            number += 1


def _line(handle: IO[bytes], manifest: Path, number: int) -> bytes | None:
    """The next line without its newline, None at the end; a line longer than MAX_LINE is refused unread."""
    try:
        line = handle.readline(MAX_LINE + 1)
    except OSError as exc:
        raise BundleRefused(f"{manifest}: cannot read ({exc.strerror})") from None
    if not line:
        return None
    if len(line) > MAX_LINE:
        raise BundleRefused(f"{manifest}: line {number} is longer than {MAX_LINE} bytes")
    return line[:-1] if line.endswith(b"\n") else line


def open_regular(path: Path, *, follow: bool = True) -> IO[bytes]:
    """Open ``path`` to read if it is a regular file: never a FIFO, device, directory (or symlink unless ``follow``)."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise BundleRefused(f"{path}: no such file") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise BundleRefused(f"{path}: is a symbolic link, not a regular file") from None
        raise BundleRefused(f"{path}: cannot read ({exc.strerror})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise BundleRefused(f"{path}: not a regular file")
    return os.fdopen(fd, "rb")


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
    """Reads a bundle's parts as one stream, each only up to the size its manifest gives."""

    def __init__(self, directory: Path, header: Header) -> None:
        self._parts = [(directory / p.name, p.size) for p in header.parts]
        self._id = header.id
        self._index = 0
        self._handle: IO[bytes] | None = None
        self._left = 0

    def read(self, size: int = -1) -> bytes:
        while self._index < len(self._parts):
            if self._handle is None:
                path, self._left = self._parts[self._index]
                self._handle = open_part(path, self._id)
            data = self._handle.read(min(self._left, size if size >= 0 else self._left))
            if data:
                self._left -= len(data)
                return data
            self._handle.close()
            self._handle = None
            self._index += 1
        return b""

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def open_part(path: Path, bundle_id: str) -> IO[bytes]:
    """A part is a regular file in the manifest's directory: not a symlink, FIFO or device."""
    if not path.exists() and not path.is_symlink():
        raise BundleRefused(f"bundle {bundle_id} is missing its part {path.name}")
    return open_regular(path, follow=False)


def check_parts(directory: Path, header: Header) -> None:
    """Refuse a bundle with a missing, truncated or altered part, before reading any of it."""
    for part in header.parts:
        with open_part(directory / part.name, header.id) as handle:
            size = os.fstat(handle.fileno()).st_size
            if size != part.size:
                raise BundleRefused(f"bundle {header.id}: part {part.name} is {size} bytes, expected {part.size}")
            digest = hashlib.sha256()
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
        if digest.hexdigest() != part.sha256:
            raise BundleRefused(f"bundle {header.id}: part {part.name} does not match its sha256 (altered)")
