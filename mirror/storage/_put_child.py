"""The file writer process: creates, writes and renames small files that ``mirror sync`` hands it.

Run by :mod:`mirror.storage.putter` as ``python -I -S <this file> <parent pid>``: standard library
only, so it starts in milliseconds and never imports from the working directory.

Why a process: on a mirror's many small files the kernel's work (mkdir, create, rename) is as
large as all of the Python work, and a thread doing it would hand the GIL back and forth with
the event loop on every system call. A process does it on the other core, with no GIL to share.

Protocol, little-endian. Each request is a header ``id, group, final length, temp length, data
length`` (5 x u32), then the final path, the temporary path (both absolute, UTF-8 with surrogate
escapes) and the data. The data goes to the temporary path, which is then renamed to the final
one; missing directories are created. With :data:`LINK` set in the data length, the data is
instead the absolute path of a file already published with the same bytes: it is hard-linked to
the temporary path (a copy where the file system has no hard links), then renamed the same way.
Each reply is ``id, errno`` (2 x u32, errno 0 for success).
Requests of one group are published in order, and after a failure the rest of its group is
refused with ECANCELED, so a page set is never half replaced. Replies go out in request order.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import signal
import struct
import sys
import time

HEADER = struct.Struct("<5I")
REPLY = struct.Struct("<2I")
_READ = 1 << 20
# Replies wait for this many, or for the input to run dry, so the parent wakes once per batch.
_REPLY_BATCH = 16
# Polling the input while busy (see _next_input): how often, and for how many empty polls.
_POLL_SECONDS = 0.0005
_IDLE_POLLS = 20
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
ENCODING = ("utf-8", "surrogateescape")
LINK = 1 << 31
"""In a request's data length: the data names a published file with the same bytes (see above)."""


def put(final: str, temp: str, data: memoryview) -> int:
    """Write ``data`` to ``temp``, rename it to ``final``; 0 or the errno of what failed."""
    try:
        try:
            fd = os.open(temp, _CREATE, 0o644)
        except FileNotFoundError:  # most directories exist; create them only when they do not
            _make_dirs(os.path.dirname(final))
            fd = os.open(temp, _CREATE, 0o644)
    except OSError as exc:
        return exc.errno or errno.EIO
    try:
        while data:
            data = data[os.write(fd, data) :]
        os.close(fd)
        fd = -1
        os.rename(temp, final)
    except OSError as exc:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(temp)
        return exc.errno or errno.EIO
    return 0


def link(final: str, temp: str, source: str) -> int:
    """Publish ``final`` as a hard link to ``source`` (same bytes, no new inode); 0 or an errno.

    An index.html and its index.v1_html are the same bytes: one inode serves both. Where the file
    system refuses hard links, the bytes are copied instead.
    """
    try:
        os.link(source, temp)
    except FileExistsError as exc:
        return exc.errno or errno.EIO
    except OSError:
        try:
            with open(source, "rb") as handle:
                data = handle.read()
        except OSError as exc:
            return exc.errno or errno.EIO
        return put(final, temp, memoryview(data))
    try:
        os.rename(temp, final)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        return exc.errno or errno.EIO
    return 0


def _make_dirs(directory: str) -> None:
    # mkdir first and stat never: a missing directory costs one call per level, not three.
    try:
        os.mkdir(directory)
    except FileExistsError:
        pass
    except FileNotFoundError:
        _make_dirs(os.path.dirname(directory))
        with contextlib.suppress(FileExistsError):
            os.mkdir(directory)


def serve(source: int, sink: int, parent: int) -> int:
    buffer = bytearray()
    replies = bytearray()
    failed_group = -1
    while True:
        start = 0
        pending = 0
        while len(buffer) - start >= HEADER.size:
            ident, group, final_len, temp_len, size = HEADER.unpack_from(buffer, start)
            linked, size = size & LINK, size & ~LINK
            begin = start + HEADER.size
            end = begin + final_len + temp_len + size
            if end > len(buffer):
                break
            if os.getppid() != parent:
                return 1  # the parent died (kill -9): its rerun owns the tree now, write nothing more
            if group == failed_group:
                result = errno.ECANCELED
            else:
                final = bytes(buffer[begin : begin + final_len]).decode(*ENCODING)
                temp = bytes(buffer[begin + final_len : begin + final_len + temp_len]).decode(*ENCODING)
                if linked:
                    same = bytes(buffer[begin + final_len + temp_len : end]).decode(*ENCODING)
                    result = link(final, temp, same)
                else:
                    with memoryview(buffer) as view:
                        result = put(final, temp, view[begin + final_len + temp_len : end])
                if result:
                    failed_group = group
            replies += REPLY.pack(ident, result)
            pending += 1
            start = end
            if pending >= _REPLY_BATCH:
                _send(sink, replies)
                pending = 0
        del buffer[:start]
        _send(sink, replies)
        chunk = _next_input(source, busy=start > 0)
        if not chunk:
            return 0 if not buffer else 1
        buffer += chunk


def _next_input(source: int, *, busy: bool) -> bytes:
    """The next piece of input (empty at its end).

    While requests keep coming, the input is polled every _POLL_SECONDS rather than waited on: a
    read that waits makes every write of the parent wake this process, and on a busy machine the
    woken writer takes the parent's core there and then (in a pages-only sync the parent's pipe
    writes took as much wall time as its HTTP requests). After _IDLE_POLLS empty polls it waits
    again, so an idle writer costs nothing.
    """
    polls = 0 if busy else _IDLE_POLLS
    while polls < _IDLE_POLLS:
        try:
            return os.read(source, _READ)
        except BlockingIOError:
            polls += 1
            time.sleep(_POLL_SECONDS)
    select.select([source], [], [])
    try:
        return os.read(source, _READ)
    except BlockingIOError:  # pragma: no cover - select said it was readable
        return _next_input(source, busy=False)


def _send(sink: int, replies: bytearray) -> None:
    with memoryview(replies) as view:
        sent = 0
        while sent < len(view):
            sent += os.write(sink, view[sent:])
    del replies[:]


def main() -> int:
    parent = int(sys.argv[1])
    # Ctrl-C reaches the whole process group: the parent stops its run, then closes our input.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.set_blocking(sys.stdin.fileno(), False)  # our end of the pipe only (see _next_input)
    try:
        return serve(sys.stdin.fileno(), sys.stdout.fileno(), parent)
    except BrokenPipeError:
        return 1  # the parent went away while we replied


if __name__ == "__main__":
    sys.exit(main())
