"""Virtual time for the dashboard: a frozen trio clock that moves only when told.

Snapshot tests and the README screenshots need the same picture every time. The core
runs on a `MockClock` with rate 0 (time stands still until `advance`), timestamps come
from a wall clock that follows it, and every step waits until the core has done all
that was due (`CoreBridge.settle`). Durations, "12s ago" and due times come out exact.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import trio
from trio.testing import MockClock

if TYPE_CHECKING:
    from .app import DeckApp

#: Where virtual time starts: an arbitrary, fixed instant.
EPOCH = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)


@contextlib.contextmanager
def deterministic_scheduling(seed: int = 0) -> Iterator[None]:
    """Make trio run ready tasks in a repeatable order while inside the block.

    Trio shuffles each batch of ready tasks on purpose (to shake out ordering bugs), so
    two workers due at the same virtual instant may start in either order. Pictures
    must not: this uses the same switch pytest-trio sets under Hypothesis (private
    to trio, for tests only) and puts it back afterwards.
    """
    run = trio._core._run
    before = run._ALLOW_DETERMINISTIC_SCHEDULING
    run._ALLOW_DETERMINISTIC_SCHEDULING = True  # type: ignore[misc]
    run._r.seed(seed)
    try:
        yield
    finally:
        run._ALLOW_DETERMINISTIC_SCHEDULING = before  # type: ignore[misc]
        run._r.seed(random.getrandbits(64))


class VirtualTime:
    """A trio clock for the guest run and the wall clock that follows it.

    Give `trio_clock` to `DeckApp(trio_clock=...)`, `release` to `DeckApp(on_stop=...)`
    and `now` to both the orchestrator (`Orchestrator(now=...)`) and the app
    (`DeckApp(clock=...)`).
    """

    def __init__(self, start: datetime = EPOCH) -> None:
        self.start = start
        self.trio_clock = MockClock(rate=0)

    def release(self) -> None:
        """Let time run on its own (autojump) from now on.

        For shutdown: a frozen clock would never let runs in flight or the grace end.
        Pass it as `DeckApp(on_stop=...)`.
        """
        self.trio_clock.autojump_threshold = 0

    def now(self) -> datetime:
        """The virtual wall-clock time."""
        return self.start + timedelta(seconds=self.trio_clock.current_time())

    async def advance(self, app: DeckApp, seconds: float, *, step: float = 0.125) -> None:
        """Move time on by `seconds` in `step`s, letting all that is due happen at each.

        The default step is a power of two, so virtual times add up exactly (tenths
        would drift: 120 steps of 0.1 are 11.99999…, and "next in 19s" would read 18s).
        Ends with a refresh of the dashboard, so what is shown is as of the new time.
        """
        await app.bridge.settle()
        for _ in range(round(seconds / step)):
            self.trio_clock.jump(step)
            await app.bridge.settle()
        app.refresh_now()
