"""The fan-out of a project's downloads: growth while slots are free, failure and cancellation."""

from __future__ import annotations

import asyncio
import gc

import pytest

from mirror.storage.putter import _Group, _wait_uncancelled
from mirror.sync.fanout import fan_out


def test_every_item_is_worked_once_on_at_most_limit_tasks() -> None:
    running: list[int] = []
    peak = 0
    done: list[int] = []

    async def work(item: int) -> None:
        nonlocal peak
        running.append(item)
        peak = max(peak, len(running))
        await asyncio.sleep(0.01)
        running.remove(item)
        done.append(item)

    asyncio.run(fan_out(range(20), work, 4, lambda: True))
    assert sorted(done) == list(range(20))
    assert peak == 4


def test_no_free_slot_means_one_task() -> None:
    running = 0
    peak = 0

    async def work(item: int) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0)
        running -= 1

    asyncio.run(fan_out(range(10), work, 8, lambda: False))
    assert peak == 1


def test_the_first_failure_is_raised_as_itself() -> None:
    async def work(item: int) -> None:
        await asyncio.sleep(0.01 * item)
        if item == 2:
            raise ValueError("item 2")

    with pytest.raises(ValueError, match="item 2"):
        asyncio.run(fan_out(range(6), work, 3, lambda: True))


def test_a_deferred_cancellation_ends_cleanly_when_a_slot_frees_meanwhile() -> None:
    """The CI failure of 2026-12-01: a task whose work deferred its cancellation (a put that must
    learn its outcome) returned into a group already shutting down, found a slot free, and tried to
    start another task: RuntimeError, and a coroutine reported as never awaited."""
    slots_free = False
    worked: list[int] = []
    replies: _Group | None = None

    async def work(item: int) -> None:
        nonlocal replies
        worked.append(item)
        if item == 0:  # Putter.put's own wait: the outcome whatever happens, then the cancellation again
            replies = _Group(asyncio.get_running_loop(), 1)
            await _wait_uncancelled(replies)
            return
        await asyncio.sleep(10)

    async def main() -> None:
        nonlocal slots_free
        runner = asyncio.create_task(fan_out(range(5), work, 4, lambda: slots_free))
        await asyncio.sleep(0.01)
        runner.cancel()
        await asyncio.sleep(0.01)
        slots_free = True  # the cancellation freed every request slot
        assert replies is not None
        replies.resolve(0, 0)  # the writer's reply: published
        with pytest.raises(asyncio.CancelledError):
            await runner

    asyncio.run(main())
    gc.collect()  # an unawaited coroutine would be reported here (warnings are errors)
    assert worked == [0, 1]  # item 1's work started, then took the pending cancellation
