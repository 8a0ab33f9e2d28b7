"""The journal of directories that may hold temporary files of work in flight.

A crash can leave ``.<name>.<token>.mirror-tmp`` files behind; the next run reads this journal
to find and remove them without walking the tree. Only work in flight needs an entry, so the
file is append-only while a run goes (one small write per project, no database commit) and is
rewritten down to the projects still in flight whenever it grows past a bound. A directory is
recorded before the first temp file is created in it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from mirror.storage.fs import fatal

# Past this size the journal is rewritten to hold only the work still in flight.
_COMPACT_BYTES = 1 << 20


class TempJournal:
    def __init__(self, path: Path, *, before_compact: Callable[[], None] = lambda: None) -> None:
        """``before_compact`` makes durable whatever finished work recorded (the state commit)."""
        self._path, self._before_compact = path, before_compact
        self._open: dict[str, tuple[str, ...]] = {}
        self._fd: int | None = None
        self._size = 0

    def dirs(self) -> list[str]:
        """Directories recorded by earlier runs (and this one), each once."""
        try:
            text = self._path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise fatal(exc, self._path) from None
        return list(dict.fromkeys(line for line in text.splitlines() if line and "\x00" not in line))

    def add(self, key: str, dirs: Iterable[str]) -> None:
        """Record ``dirs`` for the work named ``key`` before it creates temp files there."""
        entries = tuple(dict.fromkeys(dirs))
        self._open[key] = self._open.get(key, ()) + entries
        if self._size > _COMPACT_BYTES:
            self._rewrite()
        else:
            self._append(entries)

    def done(self, key: str) -> None:
        """The work named ``key`` finished or failed: its temp files are gone, its lines may go."""
        self._open.pop(key, None)

    def clear(self) -> None:
        self._close()
        self._open.clear()
        with contextlib.suppress(FileNotFoundError):
            self._path.unlink()

    def close(self) -> None:
        self._close()

    def _append(self, entries: tuple[str, ...]) -> None:
        data = "".join(f"{entry}\n" for entry in entries).encode()
        try:
            if self._fd is None:
                self._path.parent.mkdir(parents=True, exist_ok=True)
                self._fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
                self._size = os.fstat(self._fd).st_size
            os.write(self._fd, data)
        except OSError as exc:
            raise fatal(exc, self._path) from None
        self._size += len(data)

    def _rewrite(self) -> None:
        """Replace the journal with the directories of work still in flight (temp + rename)."""
        self._before_compact()
        self._close()
        temp = self._path.with_name(self._path.name + ".new")
        data = "".join(f"{entry}\n" for entries in self._open.values() for entry in entries).encode()
        try:
            temp.write_bytes(data)
            temp.replace(self._path)
        except OSError as exc:
            raise fatal(exc, self._path) from None
        self._size = len(data)

    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
