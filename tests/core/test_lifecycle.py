"""The run lifecycle as a pure state machine: every phase and event, without a loop."""

from __future__ import annotations

import itertools

import pytest

from jobdeck._lifecycle import (
    Effect,
    InvalidTransition,
    RunEvent,
    RunPhase,
    RunState,
    run_transition,
)
from jobdeck._records import RunStatus

E = Effect


def state(phase: RunPhase = RunPhase.QUEUED, attempt: int = 0, *, max_attempts: int = 3,
          requeue: bool = True, continuous: bool = False) -> RunState:
    return RunState(max_attempts, requeue, continuous, phase, attempt)


def step(s: RunState, event: RunEvent, *, retry_delay: float | None = 2.0,
         now: float = 10.0) -> tuple[RunState, frozenset[Effect]]:
    return run_transition(s, event, now=now, retry_delay=retry_delay)


def test_first_start_takes_a_slot_and_records_the_start() -> None:
    """queued --started--> running attempt 1, holding a slot, recorded as running."""
    after, effects = step(state(), RunEvent.STARTED)
    assert (after.phase, after.attempt) == (RunPhase.RUNNING, 1)
    assert effects == {E.TAKE_SLOT, E.RECORD_START}


def test_success_finishes_and_chains_dependents() -> None:
    """running --succeeded--> finished succeeded: slot freed, end recorded, circuit reset."""
    after, effects = step(state(RunPhase.RUNNING, 1), RunEvent.SUCCEEDED)
    assert (after.phase, after.status) == (RunPhase.FINISHED, RunStatus.SUCCEEDED)
    assert effects == {E.RELEASE_SLOT, E.RECORD_END, E.CIRCUIT_SUCCEEDED, E.CHAIN_DEPENDENTS}


@pytest.mark.parametrize("event", [RunEvent.FAILED, RunEvent.TIMED_OUT])
def test_failed_attempt_with_attempts_left_waits_to_retry(event: RunEvent) -> None:
    """A failed or timed-out attempt with attempts left waits, holding no slot."""
    after, effects = step(state(RunPhase.RUNNING, 1), event, retry_delay=4.0, now=10.0)
    assert (after.phase, after.attempt, after.retry_at) == (RunPhase.RETRY_WAIT, 1, 14.0)
    assert effects == {E.RELEASE_SLOT, E.WAIT_RETRY}


def test_retry_start_is_the_next_attempt_without_a_new_record() -> None:
    """retry wait --started--> running attempt n+1: a slot again, no second start record."""
    after, effects = step(state(RunPhase.RETRY_WAIT, 1), RunEvent.STARTED)
    assert (after.phase, after.attempt, after.retry_at) == (RunPhase.RUNNING, 2, None)
    assert effects == {E.TAKE_SLOT}


@pytest.mark.parametrize("event", [RunEvent.FAILED, RunEvent.TIMED_OUT])
def test_last_attempt_failing_dead_letters_the_run(event: RunEvent) -> None:
    """The last attempt failing ends the run failed: DLQ entry, circuit counts a failure."""
    after, effects = step(state(RunPhase.RUNNING, 3), event)
    assert (after.phase, after.status) == (RunPhase.FINISHED, RunStatus.FAILED)
    assert effects == {E.RELEASE_SLOT, E.RECORD_END, E.DEAD_LETTER, E.CIRCUIT_FAILED}


def test_zero_retries_is_honoured() -> None:
    """max_attempts 1: the first failure is final, whatever the delay offered."""
    after, effects = step(state(RunPhase.RUNNING, 1, max_attempts=1), RunEvent.FAILED)
    assert after.status is RunStatus.FAILED
    assert E.DEAD_LETTER in effects


def test_continuous_iteration_failing_backs_off() -> None:
    """A continuous worker's failed iteration also backs off before the next one."""
    s = state(RunPhase.RUNNING, 1, max_attempts=1, requeue=False, continuous=True)
    _, effects = step(s, RunEvent.FAILED)
    assert E.BACK_OFF in effects and E.DEAD_LETTER in effects


def test_failure_while_stopping_interrupts_and_keeps_the_trigger() -> None:
    """No retry may start (stopping): a run with attempts left is interrupted, re-queued."""
    after, effects = step(state(RunPhase.RUNNING, 1), RunEvent.FAILED, retry_delay=None)
    assert (after.phase, after.status) == (RunPhase.FINISHED, RunStatus.INTERRUPTED)
    assert effects == {E.RELEASE_SLOT, E.RECORD_END, E.REQUEUE}


@pytest.mark.parametrize(
    ("phase", "requeue", "expected"),
    [
        (RunPhase.RUNNING, True, {E.RELEASE_SLOT, E.RECORD_END, E.REQUEUE}),
        (RunPhase.RUNNING, False, {E.RELEASE_SLOT, E.RECORD_END}),
        (RunPhase.RETRY_WAIT, True, {E.RECORD_END, E.REQUEUE}),
        (RunPhase.RETRY_WAIT, False, {E.RECORD_END}),
    ],
)
def test_interruption_frees_only_a_held_slot_and_requeues_unless_continuous(
    phase: RunPhase, requeue: bool, expected: set[Effect]
) -> None:
    """Interrupted: a running run frees its slot, a waiting one held none; a continuous
    iteration's trigger is not kept (the loop simply starts again)."""
    after, effects = step(state(phase, 1, requeue=requeue), RunEvent.INTERRUPTED)
    assert after.status is RunStatus.INTERRUPTED
    assert effects == expected


@pytest.mark.parametrize(
    ("phase", "event"),
    [
        (RunPhase.QUEUED, RunEvent.SUCCEEDED),
        (RunPhase.QUEUED, RunEvent.FAILED),
        (RunPhase.QUEUED, RunEvent.TIMED_OUT),
        (RunPhase.QUEUED, RunEvent.INTERRUPTED),
        (RunPhase.RUNNING, RunEvent.STARTED),
        (RunPhase.RETRY_WAIT, RunEvent.SUCCEEDED),
        (RunPhase.RETRY_WAIT, RunEvent.FAILED),
        (RunPhase.RETRY_WAIT, RunEvent.TIMED_OUT),
        *((RunPhase.FINISHED, event) for event in RunEvent),
    ],
)
def test_impossible_events_are_refused(phase: RunPhase, event: RunEvent) -> None:
    """Events that cannot happen in a phase raise: a run never ends twice."""
    with pytest.raises(InvalidTransition):
        step(state(phase, 1), event)


def test_every_path_takes_and_frees_slots_in_balance_and_ends_once() -> None:
    """Every sequence of attempt outcomes, interrupted at any point or not: slots taken
    equal slots freed, the start is recorded once, the end exactly once, and a dead
    letter only for a failed run."""
    outcomes = (RunEvent.SUCCEEDED, RunEvent.FAILED, RunEvent.TIMED_OUT, RunEvent.INTERRUPTED)
    for max_attempts in (1, 2, 3):
        for path in itertools.product(outcomes, repeat=max_attempts):
            for stop_at in range(max_attempts + 1):
                s = state(max_attempts=max_attempts)
                seen: list[Effect] = []
                s, effects = step(s, RunEvent.STARTED)
                seen += effects
                for i, event in enumerate(path):
                    delay = None if i >= stop_at else 1.0
                    s, effects = step(s, event, retry_delay=delay)
                    seen += effects
                    if s.phase is RunPhase.FINISHED:
                        break
                    assert s.phase is RunPhase.RETRY_WAIT
                    s, effects = step(s, RunEvent.STARTED)
                    seen += effects
                assert s.phase is RunPhase.FINISHED, (max_attempts, path, stop_at)
                assert seen.count(E.TAKE_SLOT) == seen.count(E.RELEASE_SLOT)
                assert seen.count(E.RECORD_START) == 1
                assert seen.count(E.RECORD_END) == 1
                assert (E.DEAD_LETTER in seen) == (s.status is RunStatus.FAILED)
                assert s.attempt <= max_attempts
