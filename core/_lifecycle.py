"""A run's lifecycle as a pure state machine: `(RunState, event, now) -> (RunState, effects)`.

A run is queued, then runs attempt after attempt (waiting between them, holding no slot),
then finishes exactly once: succeeded, failed (every attempt failed: dead-lettered) or
interrupted (shutdown, a stuck worker given up on, a crash: its trigger goes back to
pending). Every decision about a run's path is made here, once; the engine applies the
effects (slots, records, events, the DLQ, the circuit, dependents).
"""

from __future__ import annotations

import enum
from typing import NamedTuple

from ._records import RunStatus


class RunPhase(enum.Enum):
    QUEUED = "queued"
    #: an attempt is executing and holds a slot.
    RUNNING = "running"
    #: between attempts: no slot held.
    RETRY_WAIT = "retry_wait"
    FINISHED = "finished"


class RunEvent(enum.Enum):
    #: the run, or its next attempt, was admitted and holds a slot.
    STARTED = "started"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    #: cancelled by shutdown, given up on (stuck), or found unfinished after a crash.
    INTERRUPTED = "interrupted"


class Effect(enum.Enum):
    TAKE_SLOT = "take_slot"
    RELEASE_SLOT = "release_slot"
    #: the run's first attempt starts: record the run as running.
    RECORD_START = "record_start"
    #: wait until `retry_at`, then start the next attempt.
    WAIT_RETRY = "wait_retry"
    #: record the run's end with the finished state's `status`.
    RECORD_END = "record_end"
    DEAD_LETTER = "dead_letter"
    #: keep the run's trigger pending, to run again (after a restart, if stopping).
    REQUEUE = "requeue"
    CIRCUIT_SUCCEEDED = "circuit_succeeded"
    CIRCUIT_FAILED = "circuit_failed"
    #: trigger the `triggered` dependents whose dependencies all freshly succeeded.
    CHAIN_DEPENDENTS = "chain_dependents"
    #: a continuous worker's failed iteration: back off before the next one.
    BACK_OFF = "back_off"


Effects = frozenset[Effect]


class InvalidTransition(ValueError):
    """An event that cannot happen in the run's phase (a bug in the engine)."""


class RunState(NamedTuple):
    """Where a run is in its life (immutable).

    A named tuple rather than a frozen attrs class: every run makes one or two of these,
    and a tuple is built several times faster (dispatch speed is a feature).

    Attributes:
        max_attempts: 1 + `max_retries`.
        requeue_on_interrupt: an interrupted run's trigger goes back to pending (all
            but continuous iterations, which simply start again).
        continuous: a continuous worker's iteration (a failure backs off).
        attempt: attempts started so far.
        retry_at: in `RETRY_WAIT`, when the next attempt is due (trio time).
        status: once `FINISHED`, the outcome.
    """

    max_attempts: int
    requeue_on_interrupt: bool = True
    continuous: bool = False
    phase: RunPhase = RunPhase.QUEUED
    attempt: int = 0
    retry_at: float | None = None
    status: RunStatus | None = None


#: `tuple.__new__`: builds a named tuple from all its fields, without the Python-level
#: `__new__` the class gets for its defaults (one frame less per transition).
_tuple_new = tuple.__new__

_START_FIRST: Effects = frozenset({Effect.TAKE_SLOT, Effect.RECORD_START})
_START_RETRY: Effects = frozenset({Effect.TAKE_SLOT})
_SUCCEEDED: Effects = frozenset(
    {Effect.RELEASE_SLOT, Effect.RECORD_END, Effect.CIRCUIT_SUCCEEDED, Effect.CHAIN_DEPENDENTS}
)
_RETRY: Effects = frozenset({Effect.RELEASE_SLOT, Effect.WAIT_RETRY})
_FAILED: Effects = frozenset(
    {Effect.RELEASE_SLOT, Effect.RECORD_END, Effect.DEAD_LETTER, Effect.CIRCUIT_FAILED}
)
_FAILED_CONTINUOUS: Effects = _FAILED | {Effect.BACK_OFF}
_INTERRUPTED: dict[tuple[bool, bool], Effects] = {
    # (held a slot, requeue)
    (True, True): frozenset({Effect.RELEASE_SLOT, Effect.RECORD_END, Effect.REQUEUE}),
    (True, False): frozenset({Effect.RELEASE_SLOT, Effect.RECORD_END}),
    (False, True): frozenset({Effect.RECORD_END, Effect.REQUEUE}),
    (False, False): frozenset({Effect.RECORD_END}),
}


def run_transition(
    state: RunState,
    event: RunEvent,
    *,
    now: float,
    retry_delay: float | None = None,
) -> tuple[RunState, Effects]:
    """The run after `event`, and what the engine must do about it.

    Args:
        state: the run now.
        event: what happened.
        now: trio time of the event.
        retry_delay: for a failed or timed-out attempt, how long to wait before the
            next one (the backoff, jitter applied), or None when no retry may start
            (the orchestrator is stopping): a run with attempts left is then interrupted
            and its trigger kept, not dead-lettered.

    Raises:
        InvalidTransition: `event` cannot happen in `state.phase`.
    """
    phase = state.phase
    if event is RunEvent.STARTED:
        if phase is RunPhase.QUEUED:
            return _moved(state, RunPhase.RUNNING, 1), _START_FIRST
        if phase is RunPhase.RETRY_WAIT:
            return _moved(state, RunPhase.RUNNING, state.attempt + 1), _START_RETRY
    elif event is RunEvent.SUCCEEDED:
        if phase is RunPhase.RUNNING:
            # Built in place: the one transition every successful run makes.
            return _tuple_new(RunState, (
                state.max_attempts, state.requeue_on_interrupt, state.continuous,
                RunPhase.FINISHED, state.attempt, None, RunStatus.SUCCEEDED,
            )), _SUCCEEDED
    elif event is RunEvent.FAILED or event is RunEvent.TIMED_OUT:
        if phase is RunPhase.RUNNING:
            if state.attempt < state.max_attempts:
                if retry_delay is not None:
                    return (
                        _moved(state, RunPhase.RETRY_WAIT, state.attempt, now + retry_delay),
                        _RETRY,
                    )
                # Stopping: the retry would have run; the trigger goes back to pending.
                return _interrupted(state, held_slot=True)
            effects = _FAILED_CONTINUOUS if state.continuous else _FAILED
            return _finished(state, RunStatus.FAILED), effects
    elif event is RunEvent.INTERRUPTED:
        if phase is RunPhase.RUNNING or phase is RunPhase.RETRY_WAIT:
            return _interrupted(state, held_slot=phase is RunPhase.RUNNING)
    raise InvalidTransition(f"a run cannot be {event.value} while {phase.value}")


def _moved(
    state: RunState,
    phase: RunPhase,
    attempt: int,
    retry_at: float | None = None,
    status: RunStatus | None = None,
) -> RunState:
    # Positional construction: `attrs.evolve` costs several times more, twice per run.
    return _tuple_new(RunState, (
        state.max_attempts, state.requeue_on_interrupt, state.continuous, phase, attempt,
        retry_at, status,
    ))


def _finished(state: RunState, status: RunStatus) -> RunState:
    return _tuple_new(RunState, (
        state.max_attempts, state.requeue_on_interrupt, state.continuous, RunPhase.FINISHED,
        state.attempt, None, status,
    ))


def _interrupted(state: RunState, *, held_slot: bool) -> tuple[RunState, Effects]:
    return (
        _finished(state, RunStatus.INTERRUPTED),
        _INTERRUPTED[(held_slot, state.requeue_on_interrupt)],
    )
