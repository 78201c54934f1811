"""Structuring one config table (`[orchestrator]`, `[cluster]`, a worker) with every
problem found, not the first: a strict cattrs converter, validators run one by one, and
the wording of what is wrong as a TOML user would say it."""

from __future__ import annotations

import difflib
import enum
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

import attrs
import cattrs
from attrs import AttrsInstance
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError

from ._errors import describe
from ._spec import Mode, Priority, shown_value

_T = TypeVar("_T", bound=AttrsInstance)

#: A problem inside one table: the key it concerns (None when no key applies), and what
#: is wrong.
Problem = tuple[str | None, str]

#: Validators that read another key besides their own. When that other key could not be
#: structured it holds its default instead of what the user wrote, so the check would
#: judge against a value nobody gave (a typo in `mode` must not also blame `timeout = 0`).
_ALSO_READS = {
    "timeout_seconds": "mode", "blocks": "depends_on", "heartbeat_seconds": "lease_seconds"
}


def structure_table(
    cls: type[_T], data: Mapping[str, Any], *, known_keys: Iterable[str]
) -> tuple[_T | None, list[Problem]]:
    """Structure `data` into `cls`, finding every problem rather than the first.

    Validators are disabled while structuring (attrs stops at the first failing one),
    then each is run by hand. Keys whose values could not be structured are dropped
    and the rest structured again, so their validators still run. The disabling is
    process-wide; configs are loaded at start-up, before any worker thread exists.
    """
    problems: list[Problem] = []
    bad_keys: set[str | None] = set()
    with attrs.validators.disabled():
        try:
            instance: _T | None = converter.structure(data, cls)
        except ClassValidationError as exc:
            problems = _structuring_problems(exc, known_keys)
            bad_keys = {key for key, _ in problems}
            rest = {key: value for key, value in data.items() if key not in bad_keys}
            try:
                instance = converter.structure(rest, cls)
            except ClassValidationError:
                instance = None
    if instance is not None:
        problems += _validator_problems(instance, skip=bad_keys)
    return instance, problems


def _structuring_problems(exc: ClassValidationError, known_keys: Iterable[str]) -> list[Problem]:
    with_notes, without_notes = exc.group_exceptions()
    problems: list[Problem] = [(note.name, _explain(error)) for error, note in with_notes]
    for error in without_notes:
        if isinstance(error, ForbiddenExtraKeysError):
            problems += [
                (key, f"unknown key{did_you_mean(key, known_keys)}")
                for key in sorted(error.extra_fields)
            ]
        else:
            problems.append((None, _explain(error)))
    return problems


def _validator_problems(instance: AttrsInstance, *, skip: set[str | None]) -> list[Problem]:
    problems: list[Problem] = []
    for field in attrs.fields(type(instance)):
        if field.validator is None or field.name in skip or _ALSO_READS.get(field.name) in skip:
            continue
        try:
            field.validator(instance, field, getattr(instance, field.name))
        except (TypeError, ValueError) as exc:
            problems.append((field.name, _without_field_name(str(exc), field.name)))
    return problems


def _without_field_name(message: str, name: str) -> str:
    # attrs' own validators start with the field's name, which the message already gives.
    prefix = f"{name!r} "
    return message.removeprefix(prefix)


def _explain(error: Exception) -> str:
    if isinstance(error, InvalidValue):
        return str(error)
    return f"invalid value ({describe(error)})"


# --- strict structure hooks ------------------------------------------------------------


class InvalidValue(TypeError):
    """A TOML value of the wrong type or out of its allowed set; the message says which."""


def _structure_int(value: object, _: type) -> int:
    # bool is an int subclass: `true` must not pass as 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidValue(f"must be an integer, got {describe_value(value)}")
    return value


def _structure_float(value: object, _: type) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidValue(f"must be a number, got {describe_value(value)}")
    try:
        return float(value)
    except OverflowError:
        # An integer beyond any float is beyond every range too: the key's validator says
        # so, with the range, as it would for any other value out of it.
        return value  # type: ignore[return-value]


def _structure_str(value: object, _: type) -> str:
    if not isinstance(value, str):
        raise InvalidValue(f"must be a string, got {describe_value(value)}")
    return value


def _structure_bool(value: object, _: type) -> bool:
    if not isinstance(value, bool):
        raise InvalidValue(f"must be true or false, got {describe_value(value)}")
    return value


def _structure_choice(value: object, cls: type[enum.Enum]) -> enum.Enum:
    if isinstance(value, cls):
        return value
    choices = {_choice_label(member): member for member in cls}
    if isinstance(value, str) and value in choices:
        return choices[value]
    raise InvalidValue(f"must be one of {', '.join(choices)}; got {describe_value(value)}")


def _choice_label(member: enum.Enum) -> str:
    # Mode is spelled by its value, Priority (an IntEnum) by its lower-case name.
    return member.value if isinstance(member.value, str) else member.name.lower()


def _is_names(type_: object) -> bool:
    return type_ == tuple[str, ...]


def _structure_names(value: object, _: object) -> tuple[str, ...]:
    # A single name is accepted, as the Python API's converter accepts it.
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list | tuple):
        raise InvalidValue(f"must be an array of worker names, got {describe_value(value)}")
    wrong = [
        f"item {i} is {describe_value(item)}"
        for i, item in enumerate(value)
        if not isinstance(item, str)
    ]
    if wrong:
        raise InvalidValue(f"must be an array of worker names: {'; '.join(wrong)}")
    return tuple(value)


def _is_params(type_: object) -> bool:
    return type_ == Mapping[str, Any]


def _structure_params(value: object, _: object) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidValue(f"must be a table, got {describe_value(value)}")
    return dict(value)


def _makeconverter() -> cattrs.Converter:
    converter = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)
    converter.register_structure_hook(int, _structure_int)
    converter.register_structure_hook(float, _structure_float)
    converter.register_structure_hook(str, _structure_str)
    converter.register_structure_hook(bool, _structure_bool)
    # Registered by class: as IntEnum, Priority would otherwise dispatch to the int hook.
    converter.register_structure_hook(Mode, _structure_choice)
    converter.register_structure_hook(Priority, _structure_choice)
    converter.register_structure_hook_func(_is_names, _structure_names)
    converter.register_structure_hook_func(_is_params, _structure_params)
    return converter


converter = _makeconverter()


# --- wording -------------------------------------------------------------------------


_TOML_TYPES: tuple[tuple[type, str], ...] = (
    (bool, "boolean"),
    (int, "integer"),
    (float, "float"),
    (str, "string"),
    (list, "array"),
    (Mapping, "table"),
)


def describe_value(value: object) -> str:
    """A value as a TOML user would name it: `string '5'`, `boolean true`."""
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    text = shown_value(value)
    if text.startswith("an integer of "):
        return text
    kind = next((name for cls, name in _TOML_TYPES if isinstance(value, cls)), None)
    return f"{kind} {text}" if kind else f"{type(value).__name__} {text}"


def did_you_mean(key: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(key, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
