"""Worker and orchestrator specifications: frozen, validated value classes."""

from __future__ import annotations

import enum
import zoneinfo
from collections.abc import Mapping
from typing import Any

import attrs
from attrs import validators as v
from croniter import croniter


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


def _positive(instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not value > 0:
        raise ValueError(f"must be > 0, got {value!r}")


def _non_negative(instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if value < 0:
        raise ValueError(f"must be >= 0, got {value!r}")


def _valid_cron(instance: object, attribute: attrs.Attribute[Any], value: str | None) -> None:
    if value is not None and not croniter.is_valid(value):
        raise ValueError(f"is not a valid cron expression: {value!r}")


def _valid_timezone(instance: object, attribute: attrs.Attribute[Any], value: str) -> None:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"is not a known time zone: {value!r}") from None


def _valid_name(instance: object, attribute: attrs.Attribute[Any], value: str) -> None:
    if not value or value != value.strip() or "/" in value:
        raise ValueError(
            f"must be a non-empty name without '/' or surrounding spaces, got {value!r}"
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
    interval_seconds: float = attrs.field(default=300.0, validator=_positive)
    cron: str | None = attrs.field(default=None, validator=_valid_cron)
    timezone: str = attrs.field(default="UTC", validator=_valid_timezone)
    timeout_seconds: float = attrs.field(default=60.0, validator=_non_negative)
    max_retries: int = attrs.field(default=3, validator=[v.instance_of(int), v.ge(0)])
    retry_backoff_seconds: float = attrs.field(default=1.0, validator=_non_negative)
    retry_backoff_max_seconds: float = attrs.field(default=60.0, validator=_non_negative)
    priority: Priority = attrs.field(default=Priority.NORMAL, converter=_to_priority)
    max_consecutive_failures: int = attrs.field(
        default=5, validator=[v.instance_of(int), v.ge(1)]
    )
    circuit_cooldown_seconds: float | None = attrs.field(
        default=None, validator=v.optional(_positive)
    )
    depends_on: tuple[str, ...] = attrs.field(default=(), converter=_to_names)
    blocks: tuple[str, ...] = attrs.field(default=(), converter=_to_names)
    enabled: bool = attrs.field(default=True, validator=v.instance_of(bool))
    run_at_start: bool = attrs.field(default=True, validator=v.instance_of(bool))
    jitter_seconds: float = attrs.field(default=0.0, validator=_non_negative)
    stall_seconds: float = attrs.field(default=60.0, validator=_positive)
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


@attrs.frozen(kw_only=True)
class OrchestratorConfig:
    """Settings of the orchestrator itself (the `[orchestrator]` table)."""

    max_concurrent_workers: int = attrs.field(default=5, validator=[v.instance_of(int), v.ge(1)])
    shutdown_grace_seconds: float = attrs.field(default=30.0, validator=_non_negative)
    store: str | None = attrs.field(default=None)
    history_per_worker: int = attrs.field(default=200, validator=[v.instance_of(int), v.ge(1)])
    #: How long a cancelled run may take to return before it is flagged `stuck`.
    stuck_after_seconds: float = attrs.field(default=5.0, validator=_positive)
    #: Log lines kept per worker.
    log_lines_per_worker: int = attrs.field(default=500, validator=[v.instance_of(int), v.ge(1)])
    #: How often the health monitor and the loop-lag watchdog look.
    health_interval_seconds: float = attrs.field(default=1.0, validator=_positive)
