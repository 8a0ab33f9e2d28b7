"""Filesystem storage: temp file in the target directory, optional fsync, rename into place."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import itertools
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, TypeVar

import anyio

from mirror.core import layout
from mirror.errors import EnvironmentFault
from mirror.storage._put_child import link
from mirror.storage.base import ChangeHook, Entry, check_path
from mirror.storage.putter import Put, PutFailed, Putter

_CHUNK = 1 << 20
_SMALL_READ = 1 << 16
# A download is held in memory up to this size before it goes to disk: most files are small
# enough that creating, writing and renaming them is one call (one trip to a thread with fsync).
_SPILL = 1 << 18
# Threads for fsync'ing writes: enough to keep a disk busy, few enough to bound the buffers.
_IO_THREADS = 8
_FATAL = {
    errno.ENOSPC: "disk full",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
}


def fatal(exc: OSError, path: Path) -> EnvironmentFault:
    """One readable line for an OS error that stops the whole run."""
    reason = _FATAL.get(exc.errno or 0, exc.strerror or str(exc))
    return EnvironmentFault(f"{reason}: {path}")


_T = TypeVar("_T")


class _Offload:
    """Runs blocking file system calls: on a small thread pool when they include an fsync.

    Without fsync a create, write and rename land in the page cache in microseconds, and a
    trip to a thread costs more than that (handing the GIL back and forth measured ~20% more
    CPU on the synthetic benchmark), so they run inline. An fsync blocks for milliseconds:
    those go to threads, through a plain executor (its C queue costs half of ``anyio.to_thread``).
    Shielded, so a cancelled caller still waits for the call and never races the thread.
    """

    def __init__(self, threads: int) -> None:
        self._threads = threads
        self._pool: ThreadPoolExecutor | None = None

    async def __call__(self, function: Callable[[], _T]) -> _T:
        if not self._threads:
            return function()
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="mirror-io")
        with anyio.CancelScope(shield=True):
            result = await asyncio.get_running_loop().run_in_executor(self._pool, function)
        return result


# Temporary names: counted from a random start per process (a getrandom call per file showed in
# profiles), 8 hex digits as before; a crashed run's leftovers are gone before the next run writes.
_counter = itertools.count(secrets.randbits(32))


def _token() -> str:
    return f"{next(_counter) & 0xFFFFFFFF:08x}"


_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)


class FileWriter:
    """Writes straight to a file descriptor: on the hot path of every download, so no buffering layer."""

    def __init__(self, final: str, temp: str, fsync: bool, on_commit: Callable[[], None] | None = None) -> None:
        self._final, self._temp, self._fsync = final, temp, fsync
        self._on_commit = on_commit
        self._done = False
        try:
            try:
                self._fd = os.open(temp, _CREATE, 0o644)
            except FileNotFoundError:  # most directories exist; create them only when they do not
                os.makedirs(os.path.dirname(final), exist_ok=True)
                self._fd = os.open(temp, _CREATE, 0o644)
        except OSError as exc:
            raise fatal(exc, Path(temp)) from None

    def write(self, chunk: bytes) -> None:
        try:
            view = memoryview(chunk)
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError as exc:
            self.abort()
            raise fatal(exc, Path(self._temp)) from None

    def commit(self) -> None:
        try:
            if self._fsync:
                os.fsync(self._fd)
            os.close(self._fd)
            self._done = True
            os.replace(self._temp, self._final)
        except OSError as exc:
            self._done = False
            self.abort()
            raise fatal(exc, Path(self._final)) from None
        if self._on_commit is not None:
            self._on_commit()

    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        with contextlib.suppress(OSError):
            os.close(self._fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._temp)


PutFiles = Callable[[Sequence[Put]], Awaitable[None]]


class BufferedWriter:
    """Buffers a download, then creates, writes, (fsyncs) and renames it in one call.

    A download that fits the buffer goes to the file writer process when there is one (``put``);
    with fsync the call runs on a worker thread, so a slow disk never stalls the other downloads.
    A larger one spills to its temporary file and streams there.
    """

    def __init__(
        self,
        final: str,
        temp: str,
        fsync: bool,
        offload: _Offload,
        on_commit: Callable[[], None] | None,
        put: PutFiles | None = None,
    ) -> None:
        self._args, self._offload, self._on_commit = (final, temp, fsync), offload, on_commit
        self._put = put
        self._writer: FileWriter | None = None
        self._buffer: list[bytes] = []
        self._buffered = 0

    async def write(self, chunk: bytes) -> None:
        self._buffer.append(chunk)
        self._buffered += len(chunk)
        if self._buffered >= _SPILL:
            await self._offload(self._flush)

    async def commit(self) -> None:
        if self._writer is None and self._put is not None:
            final, temp, _ = self._args
            await self._put([(final, temp, self._buffer)])
            self._buffer = []
        else:
            await self._offload(self._commit)
        if self._on_commit is not None:  # back on the event loop's thread
            self._on_commit()

    def abort(self) -> None:
        self._buffer.clear()
        if self._writer is not None:
            self._writer.abort()

    def _flush(self) -> FileWriter:
        if self._writer is None:
            self._writer = FileWriter(*self._args)
        for chunk in self._buffer:
            self._writer.write(chunk)
        self._buffer.clear()
        self._buffered = 0
        return self._writer

    def _commit(self) -> None:
        self._flush().commit()


class FileStorage:
    """The ``web/`` tree on a local filesystem: implements :class:`~mirror.storage.base.Storage`."""

    temp_names = True

    def __init__(
        self, root: Path, *, fsync: bool = False, on_change: ChangeHook | None = None, threads: bool = False
    ) -> None:
        """``threads``: file system calls always on worker threads, never on the event loop, for a
        server whose answers must not wait for a slow disk (without fsync they run inline otherwise)."""
        self.root = root
        self._prefix = str(root) + os.sep
        self._fsync = fsync
        self._on_change = on_change
        self._offload = _Offload(_IO_THREADS if fsync or threads else 0)
        self._putter: Putter | None = None
        self._putting = False
        self._putter_lock = anyio.Lock()

    @contextlib.asynccontextmanager
    async def publishing(self) -> AsyncIterator[None]:
        """Within this, small files go to a file writer process (started on first use).

        Not with fsync: one process would serialize the fsyncs that threads run side by side.
        """
        self._putting = not self._fsync
        try:
            yield
        finally:
            self._putting = False
            putter, self._putter = self._putter, None
            if putter is not None:
                await putter.aclose()

    def _put_files(self) -> PutFiles | None:
        return self._put if self._putting else None

    async def _put(self, files: Sequence[Put]) -> None:
        putter = self._putter
        if putter is None:
            async with self._putter_lock:
                if self._putter is None:
                    self._putter = await Putter.start()
                putter = self._putter
        try:
            await putter.put(files)
        except PutFailed as exc:
            raise fatal(OSError(exc.errno, os.strerror(exc.errno)), Path(exc.path)) from None

    def _name(self, path: str) -> str:
        return self._prefix + check_path(path)

    def _names(self, path: str) -> tuple[str, str]:
        """The final and a fresh temporary name of ``path``, checked once (the temporary name only
        adds a hidden file name beside it)."""
        checked = check_path(path)
        return self._prefix + checked, self._prefix + layout.temp_name(checked, _token())

    def _full(self, path: str) -> Path:
        return Path(self._name(path))

    def _hook(self, path: str) -> Callable[[], None] | None:
        hook = self._on_change
        return None if hook is None else lambda: hook(path, False)

    def open_async_writer(self, path: str, sha256: str | None = None) -> BufferedWriter:
        final, temp = self._names(path)
        return BufferedWriter(final, temp, self._fsync, self._offload, self._hook(path), self._put_files())

    async def write_pages(self, pages: Iterable[tuple[str, bytes]]) -> None:
        # A page with the very bytes of one before it (index.html after index.v1_html) is a hard
        # link to it: one inode and one write fewer per project (and half the disk for HTML pages).
        pending: list[tuple[str, bytes | str]] = []
        seen: dict[int, str] = {}
        for path, body in pages:
            same = seen.get(id(body))
            pending.append((path, same if same is not None else body))
            seen.setdefault(id(body), path)
        put = self._put_files()
        if put is not None:
            await put(
                [(*self._names(path), self._name(body) if isinstance(body, str) else [body]) for path, body in pending]
            )
        else:

            def write() -> None:
                for path, body in pending:
                    if isinstance(body, str):
                        self._link_atomic(body, path)
                    else:
                        self._write_atomic(path, [body], None)

            await self._offload(write)
        if self._on_change is not None:
            for path, _ in pending:
                self._on_change(path, False)

    def _link_atomic(self, source: str, path: str) -> None:
        """Publish ``path`` as a hard link to the published ``source`` (a copy where links fail).

        The writer process's own call: one implementation for both ways a page is written.
        """
        final, temp = self._names(path)
        code = link(final, temp, self._name(source))
        if code:
            raise fatal(OSError(code, os.strerror(code)), Path(final)) from None

    def write_atomic(self, path: str, chunks: Iterable[bytes]) -> None:
        self._write_atomic(path, chunks, self._hook(path))

    def _write_atomic(self, path: str, chunks: Iterable[bytes], on_commit: Callable[[], None] | None) -> None:
        final, temp = self._names(path)
        writer = FileWriter(final, temp, self._fsync, on_commit)
        try:
            for chunk in chunks:
                writer.write(chunk)
        except BaseException:
            writer.abort()
            raise
        writer.commit()

    def size(self, path: str) -> int | None:
        try:
            return os.stat(self._name(path)).st_size
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise fatal(exc, self._full(path)) from None

    def move_in(self, path: str, source: Path) -> bool:
        final = self._name(path)
        try:
            try:
                os.replace(source, final)
            except FileNotFoundError:
                if not os.path.exists(source):
                    return False
                os.makedirs(os.path.dirname(final), exist_ok=True)
                os.replace(source, final)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise fatal(exc, Path(final)) from None
        if self._on_change is not None:
            self._on_change(path, False)
        return True

    def open_seekable(self, path: str) -> IO[bytes]:
        return open(self._name(path), "rb")

    def read(self, path: str) -> Iterator[bytes]:
        name = self._name(path)  # a str: verify and export read every file, and Path() showed in profiles
        try:
            with open(name, "rb", buffering=0) as handle:
                # Most files are small: read by their size, not into a fresh 1 MiB buffer each (measured).
                size = min(_CHUNK, max(os.fstat(handle.fileno()).st_size, _SMALL_READ))
                while chunk := handle.read(size):
                    yield chunk
        except OSError as exc:
            raise fatal(exc, Path(name)) from None

    def delete(self, path: str) -> None:
        full = self._full(path)
        try:
            full.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise fatal(exc, full) from None
        if self._on_change is not None:  # also when it was already gone: a crash may have lost the first record
            self._on_change(path, True)
        self._prune(full.parent)

    def _prune(self, directory: Path) -> None:
        """Remove directories the deletion left empty, up to (not including) the top level."""
        top = {self.root, self.root / layout.PACKAGES, self.root / layout.SIMPLE}
        while directory not in top and self.root in directory.parents:
            try:
                directory.rmdir()
            except OSError:
                return
            directory = directory.parent

    def scan(self, directory: str) -> Iterator[Entry]:
        # A str, not a Path: verify scans every directory of the tree, and Path() showed in its profile.
        full = str(self.root) if directory == "" else self._name(directory)
        try:
            with os.scandir(full) as entries:
                for entry in entries:  # lazily: simple/ holds a directory per project
                    found = _entry(entry)
                    if found is not None:
                        yield found
        except FileNotFoundError:
            return
        except OSError as exc:
            raise fatal(exc, Path(full)) from None

    def files_in(self, directory: str) -> list[str]:
        """The published (non-temporary) files directly in ``directory``, as paths under ``web/``."""
        full = self._full(directory)
        try:
            entries = list(os.scandir(full))
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise fatal(exc, full) from None
        return sorted(
            f"{directory}/{entry.name}"
            for entry in entries
            if not layout.is_temp_name(entry.name) and entry.is_file(follow_symlinks=False)
        )

    def remove_temps(self, directory: str) -> int:
        full = self.root if directory == "" else self._full(directory)
        removed = 0
        try:
            entries = list(os.scandir(full))
        except FileNotFoundError:
            return 0
        except OSError as exc:
            raise fatal(exc, full) from None
        for entry in entries:
            if layout.is_temp_name(entry.name) and entry.is_file(follow_symlinks=False):
                with contextlib.suppress(FileNotFoundError):
                    Path(entry.path).unlink()
                    removed += 1
        return removed


def _entry(entry: os.DirEntry[str]) -> Entry | None:
    """The entry as the protocol lists it; None when it went away since the listing."""
    if entry.is_dir(follow_symlinks=False):
        return Entry(entry.name, True, 0)
    try:
        size = entry.stat(follow_symlinks=False).st_size
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise fatal(exc, Path(entry.path)) from None
    return Entry(entry.name, False, size)
