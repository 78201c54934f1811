"""Reusable runner tasks behind one `submit()`.

Handing a run to an idle runner task is cheaper than spawning a task for each one, and
the pool only grows to the peak number of runs going at once. The handoff uses trio's
low-level `reschedule`: an idle runner parks in `wait_task_rescheduled` and `submit`
wakes it with its next job as the value. This is the only place that trick lives.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

import outcome
import trio

A = TypeVar("A")
B = TypeVar("B")


class RunnerPool(Generic[A, B]):
    """Runs `work(a, b)` for each `submit(a, b)` on a pooled task of `nursery`."""

    def __init__(self, nursery: trio.Nursery, work: Callable[[A, B], Awaitable[None]]) -> None:
        self._nursery = nursery
        self._work = work
        self._idle: list[trio.lowlevel.Task] = []

    def submit(self, a: A, b: B) -> None:
        """Start `work(a, b)` soon, on an idle runner if there is one."""
        if self._idle:
            trio.lowlevel.reschedule(self._idle.pop(), outcome.Value((a, b)))
        else:
            self._nursery.start_soon(self._runner, a, b)

    async def _runner(self, a: A, b: B) -> None:
        task = trio.lowlevel.current_task()

        def abort(_: Any) -> trio.lowlevel.Abort:
            self._idle.remove(task)
            return trio.lowlevel.Abort.SUCCEEDED

        while True:
            await self._work(a, b)
            self._idle.append(task)
            a, b = await trio.lowlevel.wait_task_rescheduled(abort)
