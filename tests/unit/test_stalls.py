"""The read timeout (mirror._stalls) against a real socket that answers late, slowly, or never."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import pytest

from mirror._config import parse
from mirror._http import Fetched, TransientError, Upstream
from mirror._stalls import Stalls

TIMEOUT = 1.0
BODY = b"x" * 3000

Serve = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class _Sink:
    """An AsyncWriter that keeps what it is given."""

    def __init__(self) -> None:
        self.data = b""

    async def write(self, chunk: bytes) -> None:
        self.data += chunk

    async def commit(self) -> None:
        pass

    def abort(self) -> None:
        self.data = b""


def _head(length: int) -> bytes:
    return f"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {length}\r\n\r\n".encode()


async def _request(reader: asyncio.StreamReader) -> None:
    await reader.readuntil(b"\r\n\r\n")


async def _download(tmp_path: Path, serve: Serve, run: Callable[[Upstream, str], Awaitable[object]]) -> object:
    handlers: list[tuple[asyncio.Task[object], asyncio.StreamWriter]] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.append((task, writer))
        await serve(reader, writer)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    url = f"http://127.0.0.1:{port}/"
    config = parse(
        {"mirror": {"directory": str(tmp_path), "upstream": url + "simple/", "retries": 0, "timeout": TIMEOUT}},
        tmp_path / "m.toml",
    )
    try:
        async with Upstream(config) as upstream:
            return await run(upstream, url + "packages/demo-1.0.tar.gz")
    finally:
        server.close()
        for task, writer in handlers:  # the connections that still sleep, and their sockets
            task.cancel()
            writer.close()
        await asyncio.gather(*(task for task, _ in handlers), return_exceptions=True)
        await server.wait_closed()


def _fetch(upstream: Upstream, url: str) -> Awaitable[Fetched | None]:
    return upstream.download(url, _Sink, len(BODY), {})


async def _never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _request(reader)
    await asyncio.sleep(30)


async def _stop_halfway(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _request(reader)
    writer.write(_head(len(BODY)) + BODY[:1000])
    await writer.drain()
    await asyncio.sleep(30)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("serve", "message"),
    [(_never_answer, r"ReadTimeout: "), (_stop_halfway, "ReadTimeout while reading")],
    ids=["no answer at all", "a body that stops halfway"],
)
def test_a_stalled_answer_is_a_read_timeout(tmp_path: Path, serve: Serve, message: str) -> None:
    started = time.monotonic()
    with pytest.raises(TransientError, match=message):
        asyncio.run(_download(tmp_path, serve, _fetch))
    assert TIMEOUT <= time.monotonic() - started < 2 * TIMEOUT


@pytest.mark.slow
def test_a_slow_answer_that_keeps_coming_is_not_cut(tmp_path: Path) -> None:
    """Each wait is shorter than the timeout, the whole download three times longer."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _request(reader)
        await asyncio.sleep(0.6 * TIMEOUT)
        writer.write(_head(len(BODY)))
        for start in range(0, len(BODY), 1000):
            await asyncio.sleep(0.6 * TIMEOUT)
            writer.write(BODY[start : start + 1000])
            await writer.drain()
        await asyncio.sleep(30)

    started = time.monotonic()
    fetched = asyncio.run(_download(tmp_path, serve, _fetch))
    assert isinstance(fetched, Fetched) and fetched.size == len(BODY)
    assert time.monotonic() - started > 2 * TIMEOUT


@pytest.mark.slow
def test_a_cancellation_during_a_wait_stays_a_cancellation(tmp_path: Path) -> None:
    """A run cancelled while a request waits (here: an anyio scope) is cancelled, not a read
    timeout, and nothing of it lingers: the next request on the same loop works."""

    answers = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal answers
        answers += 1
        await _request(reader)
        if answers == 1:
            await asyncio.sleep(30)
        writer.write(_head(len(BODY)) + BODY)
        await writer.drain()

    async def run(upstream: Upstream, url: str) -> object:
        with anyio.move_on_after(0.3) as scope:
            await _fetch(upstream, url)
        assert scope.cancelled_caught
        await asyncio.sleep(1.5 * TIMEOUT)  # a leftover watch would fire here
        return await _fetch(upstream, url)

    fetched = asyncio.run(_download(tmp_path, serve, run))
    assert isinstance(fetched, Fetched) and fetched.size == len(BODY)


def test_a_timeout_and_another_cancellation_together_stay_a_cancellation() -> None:
    """The watch's own cancellation is taken back; someone else's is not."""

    async def main() -> None:
        stalls = Stalls(TIMEOUT)

        async def waiting() -> None:
            wait = stalls.start()
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                assert not wait.timed_out()  # the other cancellation remains: propagate it
                raise
            finally:
                stalls.stop(wait)

        task = asyncio.create_task(waiting())
        await asyncio.sleep(0)
        task.cancel()  # the run's cancellation
        (wait,) = stalls._waiting
        wait.expired = True  # and the watch's, at the same moment
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        stalls.close()

    asyncio.run(main())
