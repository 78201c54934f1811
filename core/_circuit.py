"""The circuit breaker as a pure state machine."""

from __future__ import annotations

import enum

import attrs

from ._records import Circuit


class CircuitEvent(enum.Enum):
    RUN_SUCCEEDED = "run_succeeded"
    RUN_FAILED = "run_failed"
    ENABLED = "enabled"
    COOLDOWN_ELAPSED = "cooldown_elapsed"


@attrs.frozen
class CircuitState:
    """A worker's circuit and the failed runs in a row that drive it."""

    circuit: Circuit = Circuit.CLOSED
    consecutive_failures: int = 0
    #: trio time the circuit last opened (None unless open).
    opened_at: float | None = None


def circuit_transition(
    state: CircuitState,
    event: CircuitEvent,
    *,
    now: float,
    max_consecutive_failures: int,
) -> CircuitState:
    """The circuit after `event`.

    closed -> open when failures reach the threshold; open -> half-open when the
    cooldown elapses; half-open -> closed on success, -> open on failure; any ->
    closed with the count reset on a manual enable.
    """
    if event is CircuitEvent.ENABLED:
        return CircuitState()
    if event is CircuitEvent.RUN_SUCCEEDED:
        return CircuitState()
    if event is CircuitEvent.COOLDOWN_ELAPSED:
        if state.circuit is Circuit.OPEN:
            return attrs.evolve(state, circuit=Circuit.HALF_OPEN, opened_at=None)
        return state
    failures = state.consecutive_failures + 1
    if state.circuit is Circuit.HALF_OPEN or failures >= max_consecutive_failures:
        return CircuitState(Circuit.OPEN, failures, now)
    return CircuitState(state.circuit, failures, state.opened_at)
