"""``mirror export``: the changes since the last export (or the whole tree) as a verifiable bundle.

Runs under the mirror's lock, so no sync changes ``web/`` while the tar stream is read from it.
The manifest is written last, by rename: a bundle without one is an interrupted export.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from mirror._config import Config
from mirror._state import State
from mirror.airgap.bundle import MANIFEST_SUFFIX, PartWriter
from mirror.airgap.manifest import Header
from mirror.core import layout
from mirror.errors import ConfigError, EnvironmentFault
from mirror.storage.base import Storage, walk_files

COMPRESSIONS = {"none": ("w|", ".tar"), "gzip": ("w|gz", ".tar.gz")}
_NO_SPLIT = 1 << 62


@dataclass(frozen=True, slots=True)
class ExportOptions:
    outdir: Path
    since: int | None = None
    full: bool = False
    split_size: int | None = None
    compression: str = "none"


@dataclass(frozen=True, slots=True)
class _Base:
    seq: int
    previous: str | None
    serial: int | None
    full: bool


def export(config: Config, state: State, storage: Storage, options: ExportOptions) -> tuple[Header, Path] | None:
    """Write one bundle of ``storage``'s files into ``options.outdir``; None when nothing changed since the base."""
    base = _base(state, options)
    upto = state.change_seq()
    if not base.full and upto <= base.seq:
        return None
    _prepare(options.outdir, config.directory)
    created = time.time()
    bundle_id = f"mirror-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(created))}-{secrets.token_hex(4)}"
    writer = _BundleWriter(storage, state, options, bundle_id, int(created))
    try:
        changes = _walk(storage) if base.full else _changed(state, base.seq, upto)
        for path, deleted in changes:
            writer.add(path, deleted)
        header = writer.finish(
            origin=_origin(state),
            previous=base.previous,
            full=base.full,
            seq=upto,
            from_serial=base.serial,
            to_serial=state.get_int("serial"),
            created=created,
        )
    except BaseException:
        writer.discard()
        raise
    state.add_export(bundle_id, upto, header.to_serial, created)
    return header, options.outdir / f"{bundle_id}{MANIFEST_SUFFIX}"


def _base(state: State, options: ExportOptions) -> _Base:
    last = state.last_export()
    if options.full or last is None:
        return _Base(0, None if last is None else last[0], None, True)
    if options.since is None:
        return _Base(last[1], last[0], last[2], False)
    found = state.last_export(max_serial=options.since)
    if found is None:
        raise ConfigError(f"no earlier export at or before serial {options.since} to continue from; use --full")
    return _Base(found[1], found[0], found[2], False)


def _origin(state: State) -> str:
    origin = state.get_meta("origin")
    if origin is None:
        origin = secrets.token_hex(16)
        state.set_meta("origin", origin)
        state.commit()
    return origin


def _prepare(outdir: Path, directory: Path) -> None:
    mine = directory.resolve()
    if outdir.resolve() == mine or mine in outdir.resolve().parents:
        raise ConfigError(f"export OUTDIR {outdir} is inside the mirror directory {directory}; pick another place")
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EnvironmentFault(f"cannot create {outdir}: {exc.strerror}") from None


def _changed(state: State, after: int, upto: int) -> Iterator[tuple[str, bool]]:
    for change in state.iter_changes(after, upto):
        yield change.path, change.deleted


def _walk(storage: Storage) -> Iterator[tuple[str, bool]]:
    """Every published file under ``web/``, in a stable order, without temporary files."""
    for path in walk_files(storage):
        yield path, False


def page_project(path: str) -> str | None:
    """The project whose JSON page ``path`` is (it stands for the project's three pages), else None."""
    parts = path.split("/")
    if len(parts) == 3 and parts[0] == layout.SIMPLE and parts[2] == "index.v1_json":
        return parts[1]
    return None


class _BundleWriter:
    def __init__(self, storage: Storage, state: State, options: ExportOptions, bundle_id: str, mtime: int) -> None:
        mode, suffix = COMPRESSIONS[options.compression]
        self._storage, self._state, self._options, self._id = storage, state, options, bundle_id
        self._mtime = mtime
        self._parts = PartWriter(options.outdir, bundle_id, suffix, options.split_size or _NO_SPLIT)
        self._tar = tarfile.open(fileobj=self._parts, mode=mode, format=tarfile.PAX_FORMAT)  # type: ignore[call-overload]  # noqa: SIM115
        self._entries_path = options.outdir / f".{bundle_id}.entries.mirror-tmp"
        self._extra_path = options.outdir / f".{bundle_id}.extra.mirror-tmp"
        self._entries = open(self._entries_path, "w", encoding="utf-8")  # noqa: SIM115 - closed in finish/discard
        self._extra = open(self._extra_path, "w", encoding="utf-8")  # noqa: SIM115 - closed in finish/discard
        self.files = self.bytes = self.deletions = 0

    def add(self, path: str, deleted: bool) -> None:
        name = page_project(path)
        if not deleted and self._add_file(path):
            if name is not None:
                project = self._state.project(name)
                self._line(self._extra, {"project": name, "serial": None if project is None else project[0]})
            return
        self._line(self._extra, {"delete": path})
        self.deletions += 1
        if name is not None:
            self._line(self._extra, {"forget": name})

    def _add_file(self, path: str) -> bool:
        size = self._storage.size(path)
        if size is None:
            return False  # recorded as written, gone since: the other side must not keep it either
        # The export runs under the mirror's lock: no sync changes the file between size and read.
        info = tarfile.TarInfo(f"web/{path}")
        info.size, info.mtime, info.mode = size, self._mtime, 0o644
        hashing = _HashingReader(self._storage.read(path))
        self._tar.addfile(info, hashing)
        entry = {"path": path, "size": info.size, "sha256": hashing.digest.hexdigest()}
        entry["project"] = self._state.file_owner(path)
        self._line(self._entries, entry)
        self.files += 1
        self.bytes += info.size
        return True

    @staticmethod
    def _line(handle: IO[str], entry: dict[str, Any]) -> None:
        handle.write(json.dumps(entry, separators=(",", ":")) + "\n")

    def finish(self, **fields: Any) -> Header:
        self._tar.close()
        self._parts.close()
        self._entries.close()
        self._extra.close()
        created = fields.pop("created")
        header = Header(
            id=self._id,
            created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created)),
            compression=self._options.compression,
            parts=tuple(self._parts.parts),
            files=self.files,
            bytes=self.bytes,
            deletions=self.deletions,
            **fields,
        )
        manifest = self._options.outdir / f"{self._id}{MANIFEST_SUFFIX}"
        temp = manifest.with_name(f".{manifest.name}.mirror-tmp")
        with open(temp, "w", encoding="utf-8") as out:
            out.write(header.to_json() + "\n")
            for source in (self._entries_path, self._extra_path):
                with open(source, encoding="utf-8") as handle:
                    while chunk := handle.read(1 << 20):
                        out.write(chunk)
        temp.replace(manifest)
        self._remove_temps()
        return header

    def discard(self) -> None:
        for handle in (self._entries, self._extra):
            handle.close()
        with contextlib.suppress(Exception):
            self._tar.close()
        self._parts.remove()
        self._remove_temps()
        with contextlib.suppress(FileNotFoundError):
            (self._options.outdir / f".{self._id}{MANIFEST_SUFFIX}.mirror-tmp").unlink()

    def _remove_temps(self) -> None:
        for path in (self._entries_path, self._extra_path):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


class _HashingReader:
    """Hands tarfile the file's bytes (a file object over the storage's chunks) and hashes them on the way.

    Each file is read once.
    """

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = b""
        self._at = 0  # what is before it in the buffer was handed out already
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) - self._at < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer, self._at = self._buffer[self._at :] + chunk, 0
        end = len(self._buffer) if size < 0 else min(self._at + size, len(self._buffer))
        data = self._buffer[self._at : end]  # the whole buffer (a small file) is not copied
        self._at = end
        self.digest.update(data)
        return data
