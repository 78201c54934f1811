"""What a worker function receives: its `JobContext`."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import attrs
import trio

#: (worker, payload) -> the new trigger's id, once stored.
TriggerFn = Callable[[str, Any], Awaitable[str]]


@attrs.define(kw_only=True, eq=False)
class JobContext:
    """Everything a worker function needs to know about the attempt it is running.

    Attributes:
        worker: the worker's name.
        run_id: id of this run (shared by all its attempts).
        trigger_id: id of the trigger the run serves.
        source: where the trigger came from (`schedule`, `manual`, `dependency`,
            `replay`, `continuous`).
        attempt: 1-based attempt number.
        payload: the trigger's JSON payload, or None.
        params: the worker's `params` table from the config.
        log: a logger tagged with worker and run id; lines are kept in the worker's
            log buffer and published as `log` events.
        fencing_token: the run's lease token. It grows with every lease the store
            hands out, so a worker can fence its own external writes: store it with
            what it writes, and have the target refuse a write whose token is lower
            than one it already took (a run whose node lost its lease, still running
            somewhere, is then refused there too).
    """

    worker: str
    run_id: str
    trigger_id: str
    source: str
    attempt: int
    payload: Any
    params: Mapping[str, Any]
    fencing_token: int
    _trigger: TriggerFn = attrs.field(alias="trigger", repr=False)
    _on_heartbeat: Callable[[], None] = attrs.field(alias="on_heartbeat", repr=False)
    _make_log: Callable[[], logging.LoggerAdapter[logging.Logger]] = attrs.field(
        alias="make_log", repr=False
    )
    _log: logging.LoggerAdapter[logging.Logger] | None = attrs.field(
        default=None, init=False, repr=False
    )

    @property
    def log(self) -> logging.LoggerAdapter[logging.Logger]:
        """A logger tagged with worker and run id (made on first use: most runs never log)."""
        if self._log is None:
            self._log = self._make_log()
        return self._log

    def heartbeat(self) -> None:
        """Tell the health monitor this (long) attempt is alive. Safe from a thread."""
        in_trio(self._on_heartbeat)

    async def trigger(self, worker: str, payload: Any = None) -> str:
        """Hand work to another worker: a durable `dependency`-free manual trigger.

        Returns once the trigger is stored, with its id. From a synchronous worker
        running in a thread, call `trio.from_thread.run(ctx.trigger, name, payload)`.

        Raises:
            UnknownWorker: no worker has that name.
        """
        return await self._trigger(worker, payload)


def in_trio(fn: Callable[[], None]) -> None:
    try:
        trio.lowlevel.current_task()
    except RuntimeError:
        trio.from_thread.run_sync(fn)
    else:
        fn()
