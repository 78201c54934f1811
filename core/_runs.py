"""One attempt of a run: the worker's function in a cancel scope, and how it ended.

The scope's deadline is the attempt's timeout; shutdown cancels the same scope (and says
so in `cancel_requested_t`). A plain `def` worker runs in a thread, which cannot be
interrupted: past its timeout it keeps its slot until it returns (the health monitor
flags it stuck meanwhile), and is then recorded as timed out.
"""

from __future__ import annotations

import inspect
import math
import traceback
from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import trio

from ._context import JobContext, TriggerFn, in_trio
from ._engine import Engine
from ._errors import describe
from ._events import LogLine, LogRecordView
from ._lifecycle import RunEvent
from ._records import RunLogLine
from ._runtime import ActiveRun, WorkerRuntime
from ._text import safe_text
from ._worklog import WorkerLog


class AttemptEnd(NamedTuple):
    """How an attempt ended: the lifecycle event, and what to record of it (immutable;
    a named tuple, built once per attempt, for speed)."""

    event: RunEvent
    duration: float
    error: str = ""
    traceback: str = ""


def is_async(fn: Callable[..., Any]) -> bool:
    """Whether calling `fn` gives a coroutine (an `async def`, or an object whose
    `__call__` is one)."""
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - an object whose __call__ is async
    )


async def run_attempt(
    engine: Engine, w: WorkerRuntime, run: ActiveRun, trigger: TriggerFn
) -> AttemptEnd | None:
    """Run the current attempt of `run` to its end.

    Returns:
        How it ended, or None if shutdown gave up on it meanwhile (stuck: its end is
        recorded already).
    """
    start = trio.current_time()
    w.heartbeat_t = start
    timeout = w.spec.timeout_seconds
    run.attempt_started_t = start
    if run.attempt != 1:
        run.attempt_started_at = engine.now()
    run.attempt_deadline_t = deadline = start + timeout if timeout > 0 else math.inf
    error: BaseException | None = None
    with trio.CancelScope(deadline=deadline) as scope:
        run.cancel_scope = scope
        if run.cancel_requested_t is not None:
            scope.cancel()
        try:
            ctx = _context(engine, w, run, trigger)
            if w.is_async:
                await w.fn(ctx)
            else:
                await trio.to_thread.run_sync(w.fn, ctx, limiter=engine.thread_limiter)
        except BaseException as exc:
            if _only_cancellation(exc):
                raise
            error = exc
    run.cancel_scope = None
    end = trio.current_time()
    duration = end - start
    if run.abandoned:
        return None
    if scope.cancelled_caught and run.cancel_requested_t is not None:
        return AttemptEnd(RunEvent.INTERRUPTED, duration)
    if scope.cancelled_caught or (error is None and scope.cancel_called):
        # cancel_called alone: the attempt outlived its timeout without honouring the
        # cancellation (a shield, a thread) and returned late; it still timed out.
        return AttemptEnd(RunEvent.TIMED_OUT, duration, f"timed out after {timeout:g}s")
    if end > deadline:
        # Past its deadline yet never cancelled: its own code held the event loop (it
        # blocked without awaiting), so no checkpoint could deliver the timeout.
        return AttemptEnd(
            RunEvent.TIMED_OUT, duration,
            f"timed out after {timeout:g}s (held the event loop for {duration:.1f}s)",
        )
    if error is not None:
        tb = "".join(traceback.format_exception(error))
        return AttemptEnd(RunEvent.FAILED, duration, safe_text(describe(error)), safe_text(tb))
    # Every successful attempt ends here: built without the named tuple's Python `__new__`.
    return tuple.__new__(AttemptEnd, (RunEvent.SUCCEEDED, duration, "", ""))


def _only_cancellation(exc: BaseException) -> bool:
    if isinstance(exc, trio.Cancelled):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return exc.split(trio.Cancelled)[1] is None
    return False


def _context(engine: Engine, w: WorkerRuntime, run: ActiveRun, trigger: TriggerFn) -> JobContext:
    record = run.record
    source = record.trigger

    def beat() -> None:
        w.heartbeat_t = trio.current_time()

    return JobContext(
        worker=w.name,
        run_id=record.id,
        trigger_id=source.id,
        source=source.source.value,
        attempt=run.attempt,
        payload=source.payload,
        params=w.spec.params,
        fencing_token=run.token,
        # The log and its sink are made when the worker first asks for its log.
        make_log=lambda: WorkerLog(w.name, record.id, in_trio, partial(_record_log, engine, run)),
        trigger=trigger,
        on_heartbeat=beat,
    )


def _record_log(
    engine: Engine, run: ActiveRun, worker: str, run_id: str | None, level: str, message: str
) -> None:
    """Keep a line a worker logged: the ring buffer, the run's own lines, an event."""
    message = safe_text(message)
    line = LogRecordView(
        ts=engine.now(), worker=worker, run_id=run_id, level=level, message=message
    )
    engine.logs.add(line)
    # The run keeps its own lines, stored with its end (bounded like the ring buffer).
    limit = engine.config.log_lines_per_worker
    run.log(RunLogLine(ts=line.ts, level=level, message=message), limit)
    engine.publish(LogLine(ts=line.ts, worker=worker, run_id=run_id, level=level, message=message))
