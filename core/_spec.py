"""Worker and orchestrator specifications: frozen, validated value classes."""

from __future__ import annotations

import enum
import inspect
import math
import reprlib
import zoneinfo
from collections.abc import Callable, Mapping
from typing import Any

import attrs
from attrs import validators as v

from ._schedule import cron_problem


class Mode(enum.StrEnum):
    """How a worker is started."""

    SCHEDULED = "scheduled"
    TRIGGERED = "triggered"
    CONTINUOUS = "continuous"


class Priority(enum.IntEnum):
    """Dispatch priority; a higher value starts first."""

    LOW = 0
    NORMAL = 1
    HIGH = 2
    CRITICAL = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def from_label(cls, label: str | Priority) -> Priority:
        if isinstance(label, Priority):
            return label
        try:
            return cls[label.upper()]
        except KeyError:
            names = ", ".join(p.label for p in cls)
            raise ValueError(f"must be one of {names}, got {label!r}") from None


#: Every duration is finite and within MIN_SECONDS..MAX_SECONDS (or 0, where a key gives 0 a
#: meaning). Near zero, adding an interval to trio's clock no longer moves it and dividing
#: by one overflows; ten years is beyond any real schedule and far from where dates and
#: timedeltas overflow (year 9999). NaN is in no range, so it is never accepted.
MIN_SECONDS = 0.001
MAX_SECONDS = 315_360_000.0
#: Every count is at most this: history, log lines, slots and attempts held in memory and
#: in SQLite's 64-bit integers stay bounded.
MAX_COUNT = 1_000_000


def seconds_problem(value: object, *, zero: bool = False, never: bool = False) -> str | None:
    """What is wrong with `value` as a duration in seconds, or None when it is fine.

    Args:
        value: the duration.
        zero: 0 is allowed too (it means "none" or "at once", depending on the key).
        never: `inf` is allowed too, meaning "never" (the caller stores it as None).
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"must be a number of seconds, got {shown_value(value)}"
    if (zero and value == 0) or (never and value == math.inf):
        return None
    if MIN_SECONDS <= value <= MAX_SECONDS:
        return None
    allowed = f"from {MIN_SECONDS:g} to {MAX_SECONDS:.0f} seconds (ten years)"
    if zero:
        allowed = f"0 or {allowed}"
    if never:
        allowed = f"{allowed}, or inf (never)"
    return f"must be {allowed}; got {shown_value(value)}"


_REPR = reprlib.Repr()
_REPR.maxlevel = 3
_REPR.maxstring = _REPR.maxother = 100


def shown_value(value: object) -> str:
    """A value as a message shows it: its repr cut to 40 characters.

    Safe for any value: one nested thousands of levels deep, an integer of thousands of
    digits (whose repr raises), an object whose `__repr__` raises.
    """
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**30:
        return f"an integer of {int(math.log10(abs(value))) + 1} digits"
    try:
        text = _REPR.repr(value)
    except Exception:
        text = f"<{type(value).__name__}>"
    return text if len(text) <= 40 else text[:37] + "..."


@attrs.frozen
class _Seconds:
    """Validator: a duration `seconds_problem` accepts; the message names the key."""

    zero: bool = False
    never: bool = False

    def __call__(self, instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        problem = seconds_problem(value, zero=self.zero, never=self.never)
        if problem is None:
            return
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"{attribute.name!r} {problem}")
        raise ValueError(f"{attribute.name!r} {problem}")


@attrs.frozen
class _Count:
    """Validator: an integer from `least` to MAX_COUNT; the message names the key."""

    least: int

    def __call__(self, instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{attribute.name!r} must be an integer, got {shown_value(value)}")
        if not self.least <= value <= MAX_COUNT:
            raise ValueError(
                f"{attribute.name!r} must be an integer from {self.least} to {MAX_COUNT};"
                f" got {shown_value(value)}"
            )


def _never_as_none(value: float | None) -> float | None:
    # `inf` spells "never" in TOML, which has no null; None is how the engine says it.
    return None if value == math.inf else value


def _valid_cron(instance: object, attribute: attrs.Attribute[Any], value: str | None) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise TypeError(f"{attribute.name!r} must be a string, got {shown_value(value)}")
    timezone = getattr(instance, "timezone", "UTC")
    problem = cron_problem(value, timezone if _is_timezone(timezone) else "UTC")
    if problem is not None:
        raise ValueError(f"{attribute.name!r} {problem}")


def _valid_timezone(instance: object, attribute: attrs.Attribute[Any], value: str) -> None:
    if not _is_timezone(value):
        raise ValueError(f"is not a known time zone: {value!r}")


def _is_timezone(value: object) -> bool:
    try:
        zoneinfo.ZoneInfo(value)  # type: ignore[arg-type]
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
        return False
    return True


def _valid_name(instance: object, attribute: attrs.Attribute[Any], value: str) -> None:
    if not value or value != value.strip() or "/" in value:
        raise ValueError(
            f"must be a non-empty name without '/' or surrounding spaces, got {value!r}"
        )


def worker_function_problem(fn: Callable[..., Any]) -> str | None:
    """What makes `fn` unfit to be a worker function, or None.

    A generator function (`def` or `async def` with `yield`) returns a generator when
    called and runs none of its body, so its runs would all "succeed" having done nothing.
    """
    call = getattr(fn, "__call__", None)  # noqa: B004 - an object whose __call__ is the worker
    if inspect.isasyncgenfunction(fn) or inspect.isasyncgenfunction(call):
        kind = "an async generator function (async def with yield)"
    elif inspect.isgeneratorfunction(fn) or inspect.isgeneratorfunction(call):
        kind = "a generator function (def with yield)"
    else:
        return None
    return (
        f"is {kind}: calling it runs none of its body; a worker is a plain"
        " async def or def without yield"
    )


def _to_priority(value: str | Priority) -> Priority:
    return Priority.from_label(value)


def _to_mode(value: str | Mode) -> Mode:
    return Mode(value)


def _to_names(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    return tuple(value)


def _to_params(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return dict(value or {})


@attrs.frozen(kw_only=True)
class WorkerSpec:
    """Everything that says how and when one worker runs (DESIGN.md, "Worker spec")."""

    name: str = attrs.field(validator=[v.instance_of(str), _valid_name])
    mode: Mode = attrs.field(default=Mode.SCHEDULED, converter=_to_mode)
    interval_seconds: float = attrs.field(default=300.0, validator=_Seconds())
    cron: str | None = attrs.field(default=None, validator=_valid_cron)
    timezone: str = attrs.field(default="UTC", validator=_valid_timezone)
    timeout_seconds: float = attrs.field(default=60.0, validator=_Seconds(zero=True))
    max_retries: int = attrs.field(default=3, validator=_Count(0))
    retry_backoff_seconds: float = attrs.field(default=1.0, validator=_Seconds(zero=True))
    retry_backoff_max_seconds: float = attrs.field(
        default=60.0, validator=_Seconds(zero=True)
    )
    priority: Priority = attrs.field(default=Priority.NORMAL, converter=_to_priority)
    max_consecutive_failures: int = attrs.field(default=5, validator=_Count(1))
    circuit_cooldown_seconds: float | None = attrs.field(
        default=None, converter=_never_as_none, validator=v.optional(_Seconds(never=True))
    )
    depends_on: tuple[str, ...] = attrs.field(default=(), converter=_to_names)
    blocks: tuple[str, ...] = attrs.field(default=(), converter=_to_names)
    enabled: bool = attrs.field(default=True, validator=v.instance_of(bool))
    run_at_start: bool = attrs.field(default=True, validator=v.instance_of(bool))
    jitter_seconds: float = attrs.field(default=0.0, validator=_Seconds(zero=True))
    stall_seconds: float = attrs.field(default=60.0, validator=_Seconds())
    #: How long a run usually takes: what `jobdeck plan` simulates (None: history, or 1s).
    expected_seconds: float | None = attrs.field(
        default=None, validator=v.optional(_Seconds())
    )
    params: Mapping[str, Any] = attrs.field(factory=dict, converter=_to_params, eq=False)
    #: Display only: a payload the dashboard offers when triggering with a payload.
    example_payload: Any = attrs.field(default=None, eq=False)

    @timeout_seconds.validator
    def _check_timeout(self, attribute: attrs.Attribute[Any], value: float) -> None:
        if value == 0 and self.mode is not Mode.CONTINUOUS:
            raise ValueError("may be 0 (no timeout) only for continuous workers")

    @depends_on.validator
    def _check_depends_on(self, attribute: attrs.Attribute[Any], value: tuple[str, ...]) -> None:
        if self.name in value:
            raise ValueError(f"worker {self.name!r} cannot depend on itself")

    @blocks.validator
    def _check_blocks(self, attribute: attrs.Attribute[Any], value: tuple[str, ...]) -> None:
        if self.name in value:
            raise ValueError(f"worker {self.name!r} cannot block itself")
        both = sorted(set(value) & set(self.depends_on))
        if both:
            raise ValueError(f"cannot both depend on and block {', '.join(both)}")


def _valid_node_name(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{attribute.name!r} must be a string, got {shown_value(value)}")
    if not value.strip() or len(value) > 100 or not value.isprintable():
        raise ValueError(
            f"{attribute.name!r} must be 1 to 100 printable characters, got {shown_value(value)}"
        )


@attrs.frozen(kw_only=True)
class ClusterConfig:
    """How this process takes part in a cluster (the `[cluster]` table), read only when
    its store is PostgreSQL."""

    #: This node's name in the cluster (default: `hostname:pid`).
    node_name: str | None = attrs.field(default=None, validator=v.optional(_valid_node_name))
    #: Runs this node may hold at once (default: `max_concurrent_workers`).
    capacity: int | None = attrs.field(default=None, validator=v.optional(_Count(1)))
    #: How long a node's lease lasts without a heartbeat.
    lease_seconds: float = attrs.field(default=30.0, validator=_Seconds())
    #: How often the lease is renewed (default: a third of it).
    heartbeat_seconds: float | None = attrs.field(default=None, validator=v.optional(_Seconds()))

    @heartbeat_seconds.validator
    def _check_heartbeat(self, attribute: attrs.Attribute[Any], value: float | None) -> None:
        if value is not None and value >= self.lease_seconds:
            raise ValueError(
                f"must be shorter than 'lease_seconds' ({shown_value(self.lease_seconds)});"
                f" got {shown_value(value)}"
            )


@attrs.frozen(kw_only=True)
class OrchestratorConfig:
    """Settings of the orchestrator itself (the `[orchestrator]` table)."""

    max_concurrent_workers: int = attrs.field(default=5, validator=_Count(1))
    shutdown_grace_seconds: float = attrs.field(default=30.0, validator=_Seconds(zero=True))
    store: str | None = attrs.field(default=None)
    history_per_worker: int = attrs.field(default=200, validator=_Count(1))
    #: How long a cancelled run may take to return before it is flagged `stuck`.
    stuck_after_seconds: float = attrs.field(default=5.0, validator=_Seconds())
    #: Log lines kept per worker.
    log_lines_per_worker: int = attrs.field(default=500, validator=_Count(1))
    #: How often the health monitor and the loop-lag watchdog look.
    health_interval_seconds: float = attrs.field(default=1.0, validator=_Seconds())
