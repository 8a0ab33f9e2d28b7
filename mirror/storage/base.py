"""The storage protocol: where the ``web/`` tree lives, behind one seam.

Paths are relative to ``web/`` and use ``/`` (``packages/ab/cd/x.whl``, ``simple/x/index.html``).
A backend publishes atomically: a file is invisible until it is whole, then visible at once under
its final name; readers never see a partial file. The engine (:mod:`mirror.sync.engine`), verify,
import and export use only what is declared here, so a backend that is not a local file system
(an object store) can stand behind it. :class:`~mirror.storage.fs.FileStorage` is the real one,
:class:`~mirror.storage.memory.MemoryStorage` the one fast tests use.

Every backend takes an ``on_change`` hook (:data:`ChangeHook`): told ``(path, deleted)`` after
each publication and each deletion, on the event loop's thread (it writes the airgap change log).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol, runtime_checkable

from packaging.utils import NormalizedName

from mirror.core import layout, parse
from mirror.errors import UnsafeName, UpstreamError

ChangeHook = Callable[[str, bool], None]
"""Told ``(path, deleted)`` after each publication or deletion under ``web/`` (the airgap change log).

It writes to the state database, so it is only ever called on the event loop's thread."""

_BAD_PARTS = frozenset({"", ".", ".."})


def check_path(path: str) -> str:
    """``path`` if it is a plain relative path under ``web/``; UnsafeName otherwise.

    Paths come from :mod:`mirror.core.layout`, which already refuses anything unsafe: this is
    every backend's last fence.
    """
    if "\\" in path or "\x00" in path or not _BAD_PARTS.isdisjoint(path.split("/")):
        raise UnsafeName(f"refusing path {path!r}")
    return path


@dataclass(frozen=True, slots=True)
class Entry:
    """One name directly in a directory: a file (with its size) or a directory (size 0)."""

    name: str
    is_dir: bool
    size: int


class AsyncWriter(Protocol):
    """A file being written under a temporary name; invisible until :meth:`commit`."""

    async def write(self, chunk: bytes) -> None: ...

    async def commit(self) -> None:
        """Make the file visible under its final name, atomically; then tell the change hook."""

    def abort(self) -> None:
        """Drop what was written; safe to call after commit or twice."""


@runtime_checkable
class SortedWalk(Protocol):
    """A backend that lists a subtree in fewer requests than a listing per directory (an object store)."""

    def walk(self, top: str, after: str = "") -> Iterator[tuple[str, int]]:
        """Every published file under ``top`` as (path, size), in sorted path order, those after ``after``."""


class Storage(Protocol):
    """The ``web/`` tree. Reads see only published files; writes are atomic per file."""

    temp_names: bool
    """Whether a write in flight shows as a temporary name in listings (a file system does; an
    object store holds it in the writer or an incomplete multipart upload, never listed)."""

    def publishing(self) -> AbstractAsyncContextManager[None]:
        """Around a run that publishes many files: a backend may batch or hand off work within it.

        Everything published inside is published when it exits (FileStorage: its file writer
        process has finished and stopped).
        """

    def open_async_writer(self, path: str, sha256: str | None = None) -> AsyncWriter:
        """A writer for one download; the file appears at ``path`` on commit.

        ``sha256`` is the digest the caller will verify before it commits, when it knows one: an
        object store records it with the object from the start of a multipart upload (the
        writer checks it again itself); a file system ignores it.
        """

    async def write_pages(self, pages: Iterable[tuple[str, bytes]]) -> None:
        """Publish small files atomically, one after another, in that order, off the event loop."""

    def write_atomic(self, path: str, chunks: Iterable[bytes]) -> None:
        """Publish ``path`` with these bytes, atomically (the root index, from the event loop or not)."""

    def move_in(self, path: str, source: Path) -> bool:
        """Publish the local file ``source`` (import's staging area) as ``path``, consuming ``source``.

        False when ``source`` does not exist (an interrupted import already moved it). The
        change hook is told, as for any publication.
        """

    def size(self, path: str) -> int | None:
        """The size of a published file, or None if there is none."""

    def read(self, path: str) -> Iterator[bytes]:
        """A published file's bytes, in chunks (their boundaries are the backend's)."""

    def open_seekable(self, path: str) -> IO[bytes]:
        """A published file for random access (a wheel's zip directory); OSError when it cannot."""

    def delete(self, path: str) -> None:
        """Remove a published file (missing is fine) and the directories it leaves empty.

        The change hook is told even when it was missing: a crash may have lost the first record.
        """

    def scan(self, directory: str) -> Iterator[Entry]:
        """Every name directly in ``directory`` (``""``: the top), temporary files included, unordered.

        A directory that does not exist has no entries. Names a file system holds that are not
        UTF-8 come as Python gives them (lone surrogates); verify reports them.
        """

    def files_in(self, directory: str) -> list[str]:
        """The published files directly in ``directory``, sorted, as paths under ``web/``."""

    def remove_temps(self, directory: str) -> int:
        """Remove temporary files left in ``directory`` by an interrupted run; returns how many."""


def walk_files(storage: Storage, directory: str = "") -> Iterator[str]:
    """Every published file under ``directory``, depth first: a directory's files (sorted), then its subdirectories.

    Holds one listing per level of the current path, never the whole tree.
    """
    entries = sorted(storage.scan(directory), key=lambda e: e.name)
    prefix = f"{directory}/" if directory else ""
    for entry in entries:
        if not entry.is_dir and not layout.is_temp_name(entry.name):
            yield prefix + entry.name
    for entry in entries:
        if entry.is_dir:
            yield from walk_files(storage, prefix + entry.name)


def root_names(
    storage: Storage, path: str, parser: parse.IndexJsonParser | parse.IndexHtmlParser
) -> Iterator[NormalizedName]:
    """The names a published root index (``path``) lists, as they stream by; none once it is missing
    or unreadable (a broken root lists nothing a reader could rely on)."""
    if storage.size(path) is None:
        return
    try:
        for chunk in storage.read(path):
            for entry in parser.feed(chunk):
                yield entry.name
    except (OSError, UpstreamError):
        return
