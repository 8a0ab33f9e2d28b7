"""The storage protocol: paths are relative to ``web/`` and use ``/``."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol


class Writer(Protocol):
    """A file being written under a temporary name; invisible until :meth:`commit`."""

    def write(self, chunk: bytes) -> None: ...

    def commit(self) -> None:
        """Make the file visible under its final name, atomically."""

    def abort(self) -> None:
        """Drop the temporary file; safe to call after commit or twice."""


class AsyncWriter(Protocol):
    """A :class:`Writer` for the event loop: the file system work happens off it."""

    async def write(self, chunk: bytes) -> None: ...

    async def commit(self) -> None: ...

    def abort(self) -> None:
        """Drop the temporary file; safe to call after commit or twice."""


class Storage(Protocol):
    def open_writer(self, path: str) -> Writer: ...

    def open_async_writer(self, path: str) -> AsyncWriter: ...

    async def write_pages(self, pages: Iterable[tuple[str, bytes]]) -> None:
        """Write small files atomically, one after another, in that order, off the event loop."""

    def write_atomic(self, path: str, chunks: Iterable[bytes]) -> None: ...

    def size(self, path: str) -> int | None:
        """The size of a published file, or None if there is none."""

    def read(self, path: str) -> Iterator[bytes]: ...

    def delete(self, path: str) -> None:
        """Remove a published file (missing is fine) and the directories it leaves empty."""

    def files_in(self, directory: str) -> list[str]:
        """The published files directly in ``directory`` (paths under ``web/``)."""

    def remove_temps(self, directory: str) -> int:
        """Remove temporary files left in ``directory`` by an interrupted run; returns how many."""
