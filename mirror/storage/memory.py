"""In-memory storage: the :class:`~mirror.storage.base.Storage` protocol with no file system.

The fast tests run the engine, verify, export and import against it, and the same tests run
against :class:`~mirror.storage.fs.FileStorage`, so it is also the executable statement of what
a backend must do: a writer's bytes live under a temporary name (listed, like a file system's)
until commit publishes them in one step; abort and :meth:`remove_temps` drop them; the change
hook hears of every publication and deletion; directories exist while something is in them.
"""

from __future__ import annotations

import contextlib
import errno
import io
import itertools
import os
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path
from typing import IO

import anyio.lowlevel

from mirror.core import layout
from mirror.errors import EnvironmentFault
from mirror.storage.base import ChangeHook, Entry, check_path

_CHUNK = 1 << 16


class MemoryWriter:
    """One download: buffered under its temporary name, published by :meth:`commit`."""

    def __init__(self, storage: MemoryStorage, path: str, temp: str) -> None:
        self._storage, self._path, self._temp = storage, path, temp
        self._done = False

    async def write(self, chunk: bytes) -> None:
        await anyio.lowlevel.checkpoint()  # another download may run meanwhile, as on a real disk
        self._storage.append_temp(self._temp, chunk)

    async def commit(self) -> None:
        await anyio.lowlevel.checkpoint()
        self._done = True
        self._storage.publish_temp(self._temp, self._path)

    def abort(self) -> None:
        if not self._done:
            self._done = True
            self._storage.drop_temp(self._temp)


class MemoryStorage:
    """The ``web/`` tree as a dict of published files beside a dict of files being written."""

    temp_names = True

    def __init__(self, *, on_change: ChangeHook | None = None) -> None:
        self._files: dict[str, bytes] = {}
        self._temps: dict[str, bytearray] = {}
        self._on_change = on_change
        self._tokens = itertools.count()
        self.publishing_runs = 0
        """How many :meth:`publishing` blocks were entered (tests check the engine uses one)."""

    # -- writing --------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def publishing(self) -> AsyncIterator[None]:
        self.publishing_runs += 1
        yield

    def open_async_writer(self, path: str, sha256: str | None = None) -> MemoryWriter:
        return MemoryWriter(self, path, self._new_temp(path))

    async def write_pages(self, pages: Iterable[tuple[str, bytes]]) -> None:
        pending = list(pages)
        for path, body in pending:
            self._publish(path, body)
            await anyio.lowlevel.checkpoint()
        for path, _ in pending:
            self._tell(path, False)

    def write_atomic(self, path: str, chunks: Iterable[bytes]) -> None:
        temp = self._new_temp(path)
        try:
            for chunk in chunks:
                self.append_temp(temp, chunk)
        except BaseException:
            self.drop_temp(temp)
            raise
        self.publish_temp(temp, path)

    def move_in(self, path: str, source: Path) -> bool:
        check_path(path)
        try:
            body = source.read_bytes()
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise EnvironmentFault(f"cannot read {source}: {exc.strerror}") from None
        self._publish(path, body)
        source.unlink()
        self._tell(path, False)
        return True

    def delete(self, path: str) -> None:
        self._files.pop(check_path(path), None)
        self._tell(path, True)

    def remove_temps(self, directory: str) -> int:
        temps = [t for t in self._temps if _parent(t) == directory]
        for temp in temps:
            del self._temps[temp]
        return len(temps)

    # -- what the writers call --------------------------------------------------------------------

    def append_temp(self, temp: str, chunk: bytes) -> None:
        self._temps[temp] += chunk

    def publish_temp(self, temp: str, path: str) -> None:
        self._publish(path, bytes(self._temps.pop(temp)))
        self._tell(path, False)

    def drop_temp(self, temp: str) -> None:
        self._temps.pop(temp, None)

    # -- reading --------------------------------------------------------------------------------

    def size(self, path: str) -> int | None:
        body = self._files.get(check_path(path))
        return None if body is None else len(body)

    def read(self, path: str) -> Iterator[bytes]:
        body = self._body(path)
        for start in range(0, len(body), _CHUNK):
            yield body[start : start + _CHUNK]

    def open_seekable(self, path: str) -> IO[bytes]:
        body = self._files.get(check_path(path))
        if body is None:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
        return io.BytesIO(body)

    def scan(self, directory: str) -> Iterator[Entry]:
        prefix = f"{directory}/" if directory else ""
        seen: set[str] = set()
        for path, size in [
            *((p, len(b)) for p, b in self._files.items()),
            *((t, len(b)) for t, b in self._temps.items()),
        ]:
            if not path.startswith(prefix):
                continue
            name, below, _ = path[len(prefix) :].partition("/")
            if name not in seen:
                seen.add(name)
                yield Entry(name, bool(below), 0 if below else size)

    def files_in(self, directory: str) -> list[str]:
        return sorted(p for p in self._files if _parent(p) == directory)

    # -- inside ---------------------------------------------------------------------------------

    def _new_temp(self, path: str) -> str:
        temp = layout.temp_name(check_path(path), f"{next(self._tokens):08x}")
        self._temps[temp] = bytearray()
        return temp

    def _publish(self, path: str, body: bytes) -> None:
        self._files[check_path(path)] = body

    def _body(self, path: str) -> bytes:
        body = self._files.get(check_path(path))
        if body is None:
            raise EnvironmentFault(f"No such file or directory: {path}")
        return body

    def _tell(self, path: str, deleted: bool) -> None:
        if self._on_change is not None:
            self._on_change(path, deleted)


def _parent(path: str) -> str:
    return path.rpartition("/")[0]
