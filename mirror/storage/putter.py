"""The parent's side of the file writer process (:mod:`mirror.storage._put_child`).

``mirror sync`` hands it every small file it publishes: a download that fit in memory, a page.
The event loop only packs a request and later wakes on its reply; the directory and inode work
runs in the other process, in parallel with the network. Large downloads stream to disk from the
event loop as before: per byte the pipe would cost as much as the file.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import itertools
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import anyio

from mirror.errors import EnvironmentFault

# The child's module is stdlib-only, so the parent can share its protocol definitions.
from mirror.storage._put_child import ENCODING, HEADER, LINK, REPLY

_CHILD = str(Path(__file__).with_name("_put_child.py"))
_STDERR_KEPT = 4096
# A reply the child never sent: it died with the request in flight.
_DIED = 0xFFFFFFFF
# The pipe's buffer: the default 64 KiB holds few downloads; 1 MiB is Linux's unprivileged maximum.
_PIPE_SIZE = 1 << 20

Put = tuple[str, str, Sequence[bytes] | str]
"""``(final path, temporary path, chunks)``: one file to publish; with a path (``str``) instead
of chunks, the file is a hard link to that published file, which holds the same bytes."""


class PutFailed(Exception):
    """The child could not publish a file: ``errno`` says why (ECANCELED: an earlier file of its group failed)."""

    def __init__(self, code: int, path: str) -> None:
        super().__init__(code, os.strerror(code), path)
        self.errno, self.path = code, path


class _Group:
    """The replies to one :meth:`Putter.put`: its codes fill in, then its waiter wakes."""

    __slots__ = ("_loop", "codes", "left", "temps", "waiter")

    def __init__(self, loop: asyncio.AbstractEventLoop, count: int) -> None:
        self._loop = loop
        self.codes = [0] * count
        self.temps: list[str] = []
        self.left = count
        self.waiter: asyncio.Future[None] | None = None

    def resolve(self, index: int, code: int) -> None:
        self.codes[index] = code
        self.left -= 1
        if not self.left and self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def wait(self) -> asyncio.Future[None]:
        """A fresh future to wait on (a cancellation cancels the one it interrupts)."""
        self.waiter = self._loop.create_future()
        return self.waiter


async def _wait_uncancelled(group: _Group) -> None:
    """Wait for every reply of ``group``; a cancellation meanwhile is deferred, not lost.

    In plain asyncio, not an anyio shielded scope: that scope cost ~4% of a sync's CPU (it looks
    up the async library and the current task on entry and exit, for every file). A cancellation
    is taken back while the replies are awaited (``uncancel``), then requested again, with its
    message, once they are in: the caller's next checkpoint raises it, and anyio's scopes still
    recognise their own cancellation by that message.
    """
    deferred: asyncio.CancelledError | None = None
    while group.left:
        try:
            await group.wait()
        except asyncio.CancelledError as exc:
            task = asyncio.current_task()
            assert task is not None
            task.uncancel()
            deferred = exc
    if deferred is not None:
        task = asyncio.current_task()
        assert task is not None
        task.cancel(deferred.args[0] if deferred.args else None)


class _Protocol(asyncio.SubprocessProtocol):
    def __init__(self, owner: Putter) -> None:
        self._owner = owner
        self._replies = bytearray()

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        if fd == 2:
            self._owner.stderr = (self._owner.stderr + data)[-_STDERR_KEPT:]
            return
        self._replies += data
        whole = len(self._replies) - len(self._replies) % REPLY.size
        for ident, code in REPLY.iter_unpack(memoryview(self._replies)[:whole]):
            self._owner.resolve(ident, code)
        del self._replies[:whole]

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if fd == 1:
            self._owner.lost()

    def process_exited(self) -> None:
        self._owner.lost()


class Putter:
    """One child process and the requests in flight to it."""

    def __init__(self) -> None:
        self._transport: asyncio.SubprocessTransport | None = None
        self._stdin: asyncio.WriteTransport | None = None
        self._pending: dict[int, tuple[_Group, int]] = {}
        self._ids = itertools.count(1)
        self._gone = False
        self._exited: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # Requests packed during one turn of the event loop, written to the pipe at its end.
        self._outbox: list[bytes] = []
        self.stderr = b""

    @classmethod
    async def start(cls) -> Putter:
        putter = cls()
        loop = putter._loop = asyncio.get_running_loop()
        putter._exited = loop.create_future()
        try:
            transport, _ = await loop.subprocess_exec(
                lambda: _Protocol(putter),
                sys.executable,
                "-I",
                "-S",
                _CHILD,
                str(os.getpid()),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        except OSError as exc:
            raise EnvironmentFault(f"cannot start the file writer process ({sys.executable}): {exc}") from None
        putter._transport = transport
        stdin = transport.get_pipe_transport(0)
        assert isinstance(stdin, asyncio.WriteTransport)
        # Requests in flight are bounded by the tasks awaiting them, not by pausing the pipe.
        stdin.set_write_buffer_limits(high=1 << 30)
        pipe = stdin.get_extra_info("pipe")
        if pipe is not None and hasattr(fcntl, "F_SETPIPE_SZ"):
            with contextlib.suppress(OSError):
                fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_SIZE)
        putter._stdin = stdin
        return putter

    async def put(self, files: Sequence[Put]) -> None:
        """Publish ``files`` in order; raises PutFailed for the first that failed.

        Not cancellable, like a write in a thread: a cancelled caller still learns the outcome and
        records the files that were published; its cancellation is deferred to its next checkpoint.
        """
        group = self._send(files)
        if group.left:
            await _wait_uncancelled(group)
        for code, path in zip(group.codes, group.temps, strict=True):
            if code == _DIED:
                raise self._died()
            if code:
                raise PutFailed(code, path)

    def _send(self, files: Sequence[Put]) -> _Group:
        if self._gone or self._stdin is None or self._loop is None:
            raise self._died()
        group = _Group(self._loop, len(files))
        first = next(self._ids)
        parts: list[bytes] = []  # into the outbox whole, or not at all (an encoding error midway)
        for index, (final, temp, chunks) in enumerate(files):
            ident = next(self._ids)
            final_bytes, temp_bytes = final.encode(*ENCODING), temp.encode(*ENCODING)
            if isinstance(chunks, str):
                source = chunks.encode(*ENCODING)
                parts.append(HEADER.pack(ident, first, len(final_bytes), len(temp_bytes), len(source) | LINK))
                parts += (final_bytes, temp_bytes, source)
            else:
                parts.append(HEADER.pack(ident, first, len(final_bytes), len(temp_bytes), sum(map(len, chunks))))
                parts += (final_bytes, temp_bytes, *chunks)
            self._pending[ident] = (group, index)
            group.temps.append(temp)
        if not self._outbox:
            self._loop.call_soon(self._flush)
        self._outbox += parts
        return group

    def _flush(self) -> None:
        """One pipe write for every request of this turn of the loop.

        Each write wakes the child, and a wake-up costs more than packing a request (the pipe
        writes were 15% of the pages-only profile when every project wrote its own).
        """
        parts, self._outbox = self._outbox, []
        if parts and self._stdin is not None and not self._stdin.is_closing():
            self._stdin.write(b"".join(parts))

    def resolve(self, ident: int, code: int) -> None:
        entry = self._pending.pop(ident, None)
        if entry is not None:
            entry[0].resolve(entry[1], code)

    def lost(self) -> None:
        """The child is gone: whatever was in flight failed (a clean stop has nothing in flight)."""
        if not self._gone:
            self._gone = True
            for group, index in self._pending.values():
                group.resolve(index, _DIED)
            self._pending.clear()
        exited = self._transport is not None and self._transport.get_returncode() is not None
        if exited and self._exited is not None and not self._exited.done():
            self._exited.set_result(None)

    def _died(self) -> EnvironmentFault:
        code = self._transport.get_returncode() if self._transport is not None else None
        lines = self.stderr.decode("utf-8", "replace").strip().splitlines()
        why = f": {lines[-1]}" if lines else (f" (exit status {code})" if code is not None else "")
        return EnvironmentFault(f"the file writer process stopped unexpectedly{why}")

    async def aclose(self) -> None:
        """End of input: the child finishes what it has, then exits; wait for that."""
        if self._transport is None:
            return
        self._gone = True
        self._flush()
        if self._stdin is not None:
            self._stdin.close()
        with anyio.CancelScope(shield=True):
            with anyio.move_on_after(30):
                if self._exited is not None:
                    await self._exited
            if self._transport.get_returncode() is None:
                self._transport.kill()
            self._transport.close()
