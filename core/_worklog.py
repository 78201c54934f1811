"""`ctx.log`: a stdlib logger adapter that also feeds the worker's ring buffer."""

from __future__ import annotations

import itertools
import logging
from collections import deque
from collections.abc import Callable, MutableMapping
from typing import Any

from ._events import LogRecordView

WORKER_LOGGER = "jobdeck.worker"

#: (worker, run_id, level name, message) -> None; called on the trio thread.
LogSink = Callable[[str, "str | None", str, str], None]


class WorkerLog(logging.LoggerAdapter[logging.Logger]):
    """A logger tagged with worker and run id.

    Each line goes to the orchestrator (ring buffer and `log` event) and then on to
    the stdlib logger `jobdeck.worker.<name>`, so an application embedding jobdeck
    sees worker logs in its own logging setup too.
    """

    def __init__(self, worker: str, run_id: str | None, sink: Callable[[Callable[[], None]], None],
                 record: LogSink) -> None:
        super().__init__(
            logging.getLogger(f"{WORKER_LOGGER}.{worker}"), {"worker": worker, "run_id": run_id}
        )
        self._worker = worker
        self._run_id = run_id
        self._sink = sink
        self._record = record

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        kwargs.setdefault("extra", {}).update(self.extra or {})
        return msg, kwargs

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        if not self.isEnabledFor(level):
            return
        message = _render(msg, args)
        if kwargs.get("exc_info"):
            message = _with_exception(message, kwargs["exc_info"])
        level_name = logging.getLevelName(level)
        self._sink(lambda: self._record(self._worker, self._run_id, level_name, message))
        super().log(level, msg, *args, **kwargs)


def _render(msg: object, args: tuple[object, ...]) -> str:
    if not args:
        return str(msg)
    try:
        return str(msg) % args
    except (TypeError, ValueError):
        return f"{msg} {args!r}"


def _with_exception(message: str, exc_info: Any) -> str:
    import sys
    import traceback

    if exc_info is True:
        exc_info = sys.exc_info()
    if isinstance(exc_info, BaseException):
        exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
    if isinstance(exc_info, tuple) and exc_info[0] is not None:
        return message + "\n" + "".join(traceback.format_exception(*exc_info)).rstrip()
    return message


def ensure_level() -> None:
    """Worker INFO lines are recorded unless the application chose a level itself."""
    logger = logging.getLogger(WORKER_LOGGER)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)


class WorkerLogs:
    """The last lines of each worker's log: one bounded ring buffer per worker."""

    def __init__(self, per_worker: int) -> None:
        self.per_worker = per_worker
        self._buffers: dict[str, deque[LogRecordView]] = {}
        #: lines pushed out of a full buffer.
        self.dropped = 0

    def add(self, line: LogRecordView) -> None:
        buffer = self._buffers.get(line.worker)
        if buffer is None:
            buffer = self._buffers[line.worker] = deque(maxlen=self.per_worker)
        if len(buffer) == buffer.maxlen:
            self.dropped += 1
        buffer.append(line)

    def resize(self, per_worker: int) -> None:
        """Keep `per_worker` lines per worker from now on (a reload changed it); lines
        a smaller buffer cannot hold are dropped, oldest first, and counted."""
        if per_worker == self.per_worker:
            return
        self.per_worker = per_worker
        for worker, buffer in self._buffers.items():
            self.dropped += max(0, len(buffer) - per_worker)
            self._buffers[worker] = deque(buffer, maxlen=per_worker)

    def lines(self, worker: str | None = None, limit: int = 200) -> list[LogRecordView]:
        """The last `limit` lines of one worker, or of all workers merged by time."""
        if worker is not None:
            return list(self._buffers.get(worker, ()))[-limit:]
        merged = sorted(
            itertools.chain.from_iterable(self._buffers.values()), key=lambda line: line.ts
        )
        return merged[-limit:]
