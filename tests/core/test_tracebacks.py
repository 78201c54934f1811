"""Tracebacks for people: the worker's frames only; the stored traceback stays whole."""

from __future__ import annotations

import trio

from jobdeck import DeadLettered, JobContext, Orchestrator, OrchestratorConfig
from jobdeck._tracebacks import worker_frames


def _helper() -> None:
    raise ValueError("bad value")


def sync_worker(ctx: JobContext) -> None:
    _helper()


async def test_a_thread_workers_traceback_shows_its_own_frames_only() -> None:
    """The DLQ keeps jobdeck's and trio's frames; `worker_frames` shows the worker's."""
    orch = Orchestrator(OrchestratorConfig())
    orch.register("sync", sync_worker, mode="triggered", max_retries=0)
    with orch.subscribe() as events:
        async with trio.open_nursery() as nursery:
            await nursery.start(orch.run)
            await orch.trigger("sync")
            with trio.fail_after(10):
                async for event in events:
                    if isinstance(event, DeadLettered):
                        break
            (entry,) = await orch.dead_letters()
            orch.stop(grace=0)
    stored = entry.traceback
    assert "_runs.py" in stored and "trio" in stored  # complete where it is kept
    shown = worker_frames(stored)
    assert shown.startswith("Traceback (most recent call last):\n")
    frames = [line.strip() for line in shown.splitlines() if line.lstrip().startswith("File")]
    assert [f.rsplit(" in ", 1)[1] for f in frames] == ["sync_worker", "_helper"]
    assert shown.rstrip().endswith("ValueError: bad value")


def test_text_without_frames_and_tracebacks_of_only_hidden_frames_stay_as_they_are() -> None:
    """Nothing to hide, or nothing but hidden frames: the text comes back unchanged."""
    assert worker_frames("ValueError: no traceback") == "ValueError: no traceback"
    import jobdeck

    only = f'Traceback (most recent call last):\n  File "{jobdeck.__file__}", line 1, in x\n' \
        "    y()\nValueError: v\n"
    assert worker_frames(only) == only


def test_frames_of_an_exception_group_are_filtered_too() -> None:
    """Frames inside an exception group's `|` margin are judged like any other."""
    import jobdeck

    text = (
        "  | ExceptionGroup: boom (1 sub-exception)\n"
        "  +-+---------------- 1 ----------------\n"
        "    | Traceback (most recent call last):\n"
        f'    |   File "{jobdeck.__file__}", line 3, in run\n'
        "    |     await fn()\n"
        '    |   File "/srv/app/jobs.py", line 9, in fn\n'
        "    |     raise KeyError(1)\n"
        "    | KeyError: 1\n"
    )
    shown = worker_frames(text)
    assert jobdeck.__file__ not in shown and "await fn()" not in shown
    assert '/srv/app/jobs.py", line 9, in fn\n    |     raise KeyError(1)' in shown
