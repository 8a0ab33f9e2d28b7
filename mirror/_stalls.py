"""A read timeout for many requests at once: one periodic check instead of a timer per chunk.

aiohttp's own read timeout (``sock_read``) cancels and re-arms a timer every time the socket
delivers data: two timer handles per small request, about 4% of a synthetic sync's CPU
(benchmarks/README.md). Here a request registers only while it waits for the peer (the response
head, then each body read), and one check, every quarter of the timeout while anything waits,
cancels the task of every request that has waited the whole timeout. A stall is found between
``timeout`` and 1.25 times ``timeout`` after the peer last answered.
"""

from __future__ import annotations

import asyncio

_CANCEL_MESSAGE = "mirror: the upstream sent nothing within the read timeout"


class Wait:
    """One request's wait for its peer, from :meth:`Stalls.start` until :meth:`Stalls.stop`."""

    __slots__ = ("expired", "since", "task")

    def __init__(self, task: asyncio.Task[object], since: float) -> None:
        self.task, self.since = task, since
        self.expired = False

    def timed_out(self) -> bool:
        """After a CancelledError in the wait: True when the read timeout alone caused it.

        The cancellation is then taken back; one requested by anyone else (a cancelled run,
        an anyio scope) stays, and the caller must let it propagate.
        """
        return self.expired and self.task.uncancel() == 0


class Stalls:
    """The requests of one event loop that wait for their peer; see the module's docstring."""

    __slots__ = ("_loop", "_timeout", "_timer", "_waiting")

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._waiting: set[Wait] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> Wait:
        """Register the current task's wait for its peer, starting now."""
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        task = asyncio.current_task(loop)  # with the loop given: no running-loop lookup (a getpid on 3.11)
        assert task is not None
        wait = Wait(task, loop.time())
        self._waiting.add(wait)
        if self._timer is None:
            self._timer = loop.call_later(self._timeout / 4, self._check)
        return wait

    def stop(self, wait: Wait) -> None:
        self._waiting.discard(wait)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check(self) -> None:
        self._timer = None
        assert self._loop is not None
        now = self._loop.time()
        for wait in list(self._waiting):
            if not wait.expired and now - wait.since >= self._timeout:
                # The CancelledError lands in the wait itself: the task is suspended there, or
                # about to resume there (stop() has not run yet), so the caller converts it.
                wait.expired = True
                wait.task.cancel(_CANCEL_MESSAGE)
        if self._waiting:
            self._timer = self._loop.call_later(self._timeout / 4, self._check)
