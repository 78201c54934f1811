"""Loading the TOML configuration, reporting every problem in it at once.

A config is read into plain dicts by `tomllib`, then structured into `WorkerSpec` and
`OrchestratorConfig` by a strict cattrs converter. Nothing stops at the first problem: each
table is structured with detailed validation, then re-structured without the values that
failed so that the validators of the remaining keys, the `fn` imports and the graph checks
still run. Everything found becomes one line of a single `ConfigError`.
"""

from __future__ import annotations

import difflib
import enum
import importlib
import os
import pathlib
import sys
import tomllib
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import attrs
import cattrs
from attrs import AttrsInstance
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError

from ._errors import ConfigError
from ._graph import graph_problems
from ._spec import (
    ClusterConfig,
    Mode,
    OrchestratorConfig,
    Priority,
    WorkerSpec,
    shown_value,
    worker_function_problem,
)

__all__ = [
    "JobdeckConfig",
    "WorkerRegistration",
    "import_function",
    "load_config",
    "parse_config",
]

_T = TypeVar("_T", bound=AttrsInstance)

#: A problem inside one table: the key it concerns (None when no key applies), and what
#: is wrong.
_Problem = tuple[str | None, str]

_TOP_LEVEL_KEYS = ("orchestrator", "cluster", "workers")
_WORKER_KEYS = ("fn", *(f.name for f in attrs.fields(WorkerSpec) if f.name != "name"))
_ORCHESTRATOR_KEYS = tuple(f.name for f in attrs.fields(OrchestratorConfig))
_CLUSTER_KEYS = tuple(f.name for f in attrs.fields(ClusterConfig))

#: Validators that read another key besides their own. When that other key could not be
#: structured it holds its default instead of what the user wrote, so the check would
#: judge against a value nobody gave (a typo in `mode` must not also blame `timeout = 0`).
_ALSO_READS = {
    "timeout_seconds": "mode", "blocks": "depends_on", "heartbeat_seconds": "lease_seconds"
}


@attrs.frozen(kw_only=True)
class WorkerRegistration:
    """A worker ready to register: its spec and the function that does the work."""

    spec: WorkerSpec
    fn: Callable[..., Any]
    #: `"package.module:function"` for workers from a config, a qualname for workers
    #: registered in Python.
    fn_ref: str


@attrs.frozen(kw_only=True)
class JobdeckConfig:
    """A loaded, fully validated configuration."""

    #: The file it was loaded from; None when built from a dict by `parse_config`.
    path: pathlib.Path | None
    orchestrator: OrchestratorConfig
    #: In the order the file lists them.
    workers: tuple[WorkerRegistration, ...]
    #: Keys written but ignored (a mode that does not read them), one message each, worded
    #: like problems: `FILE: worker 'a': warning: key 'cron' is ignored for mode 'triggered'`.
    warnings: tuple[str, ...] = ()
    #: The `[cluster]` table: read only when the store is PostgreSQL.
    cluster: ClusterConfig = attrs.field(factory=ClusterConfig)


def load_config(
    path: str | os.PathLike[str], *, import_functions: bool = True
) -> JobdeckConfig:
    """Read and validate a TOML config file.

    Args:
        path: the config file. Messages name it as given.
        import_functions: False checks each `fn` only in form and imports nothing
            (`jobdeck plan`): each registration's `fn` then raises if called.

    Returns:
        The validated configuration, with every worker's function imported.

    Raises:
        ConfigError: with one message per problem: the file cannot be read or is not
            valid TOML, or any key of any table is wrong.
    """
    source = os.fspath(path)
    data = _read_toml(source)
    return _build_config(
        data, source=source, path=pathlib.Path(source), import_functions=import_functions
    )


def parse_config(
    data: Mapping[str, Any], *, source: str = "<config>", import_functions: bool = True
) -> JobdeckConfig:
    """Validate a config already parsed from TOML (or built in Python).

    Args:
        data: the top-level table: `orchestrator` and `workers` keys.
        source: how messages name the config, in place of a file name.
        import_functions: as for `load_config`.

    Returns:
        The validated configuration, with `path` None.

    Raises:
        ConfigError: with one message per problem.
    """
    return _build_config(data, source=source, path=None, import_functions=import_functions)


def import_function(ref: str) -> Callable[..., Any]:
    """Import the callable that `ref` names.

    Args:
        ref: `"package.module:function"`; the part after the colon may be dotted
            (`"package.module:Class.method"`).

    Returns:
        The callable.

    Raises:
        ValueError: `ref` is malformed, the module is not found, importing it raises,
            the attribute does not exist or is not callable. The message says which.
    """
    module_name, attr_path = _split_reference(ref)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and _is_same_or_parent(exc.name, module_name):
            raise ValueError(f"cannot import {ref!r}: no module named {exc.name!r}") from exc
        # The module exists but itself imports something that does not.
        raise ValueError(f"cannot import {ref!r}: {_exception_text(exc)}") from exc
    except BaseException as exc:
        # The user's module ran and raised: its own error is what they need to see.
        # BaseException: a module that calls sys.exit() or raises KeyboardInterrupt or
        # GeneratorExit must not end `check` silently, or the runner having done nothing.
        raise ValueError(
            f"cannot import {ref!r}: importing {module_name!r} raised {_exception_text(exc)}"
        ) from exc
    target: Any = module
    for part in attr_path.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ValueError(
                f"cannot import {ref!r}: {module_name!r} has no attribute {attr_path!r}"
            ) from None
        except BaseException as exc:
            # A module `__getattr__` or a property is user code too.
            raise ValueError(
                f"cannot import {ref!r}: getting {attr_path!r} from {module_name!r}"
                f" raised {_exception_text(exc)}"
            ) from exc
    if not callable(target):
        raise ValueError(f"{ref!r} is not callable: it is {_describe(target)}")
    return target


def _split_reference(ref: str) -> tuple[str, str]:
    """`"package.module:function"` as its module and attribute path; ValueError if malformed."""
    module_name, _, attr_path = ref.partition(":")
    if not (_is_dotted_name(module_name) and _is_dotted_name(attr_path)):
        raise ValueError(f"must look like 'package.module:function', got {ref!r}")
    return module_name, attr_path


def _not_imported(ref: str) -> Callable[..., Any]:
    """What stands for a function that a config was loaded without importing."""

    def not_imported(*_: Any) -> None:
        raise RuntimeError(f"{ref!r} was not imported: the config was loaded without it")

    return not_imported


# --- reading -------------------------------------------------------------------------


def _read_toml(source: str) -> dict[str, Any]:
    try:
        with open(source, "rb") as file:
            return tomllib.load(file)
    except FileNotFoundError:
        problem = "no such file"
    except IsADirectoryError:
        problem = "is a directory, not a config file"
    except PermissionError:
        problem = "cannot be read: permission denied"
    except OSError as exc:
        problem = f"cannot be read: {exc.strerror or exc}"
    except UnicodeDecodeError as exc:
        problem = f"is not UTF-8 text ({exc.reason} at byte {exc.start})"
    except tomllib.TOMLDecodeError as exc:
        problem = f"invalid TOML: {exc}"
    except ValueError:
        # tomllib lets int()'s own error through, for an integer too long to convert.
        problem = f"invalid TOML: an integer of more than {sys.get_int_max_str_digits()} digits"
    except RecursionError:
        # tomllib parses nested values recursively: a few hundred levels exhaust the stack.
        problem = "cannot be read: arrays or tables are nested too deeply"
    raise ConfigError([f"{source}: {problem}"])


# --- the whole config ----------------------------------------------------------------


@attrs.frozen(kw_only=True)
class _ParsedWorker:
    name: str
    #: What the graph checks see: the spec as written, minus references that are broken.
    graph_spec: WorkerSpec
    registration: WorkerRegistration | None
    problems: list[_Problem]
    #: Keys the worker does not read, and why: `(key, "for mode 'triggered'")`.
    ignored: list[tuple[str, str]] = attrs.field(factory=list)


def _build_config(
    data: Mapping[str, Any], *, source: str, path: pathlib.Path | None, import_functions: bool
) -> JobdeckConfig:
    try:
        return _check_and_build(
            data, source=source, path=path, import_functions=import_functions
        )
    except RecursionError:
        # Values are shown through reprlib and no hook walks into them, so this is a
        # guard: a value nested deeper than the stack (a config built in Python; TOML
        # that deep is refused while reading) must still be a message, not a traceback.
        raise ConfigError([f"{source}: values are nested too deeply to check"]) from None


def _check_and_build(
    data: Mapping[str, Any], *, source: str, path: pathlib.Path | None, import_functions: bool
) -> JobdeckConfig:
    if not isinstance(data, Mapping):
        raise ConfigError([f"{source}: must be a table, got {_describe(data)}"])
    problems = [f"{source}: {what}" for what in _top_level_problems(data)]

    orchestrator, orchestrator_problems = _parse_orchestrator(data.get("orchestrator", {}))
    problems += [
        _render(f"{source}: [orchestrator]", key, what) for key, what in orchestrator_problems
    ]

    cluster, cluster_problems = _parse_cluster(data.get("cluster", {}))
    problems += [_render(f"{source}: [cluster]", key, what) for key, what in cluster_problems]

    workers, workers_problem = _parse_workers(data.get("workers", {}), import_functions)
    if workers_problem:
        problems.append(f"{source}: {workers_problem}")
    warnings = []
    for worker in workers:
        problems += [
            _render(f"{source}: worker {worker.name!r}", key, what) for key, what in worker.problems
        ]
        warnings += [
            f"{source}: worker {worker.name!r}: warning: key {key!r} is ignored {why}"
            for key, why in worker.ignored
        ]
    specs = {worker.name: worker.graph_spec for worker in workers}
    problems += [f"{source}: {message}" for message in graph_problems(specs)]

    if problems:
        raise ConfigError(problems)
    assert orchestrator is not None and cluster is not None  # no problems: both structured
    return JobdeckConfig(
        path=path,
        orchestrator=orchestrator,
        cluster=cluster,
        workers=tuple(w.registration for w in workers if w.registration is not None),
        warnings=tuple(warnings),
    )


def _render(where: str, key: str | None, what: str) -> str:
    return f"{where}: {what}" if key is None else f"{where}: key {key!r}: {what}"


def _top_level_problems(data: Mapping[str, Any]) -> list[str]:
    return [
        f"unknown top-level key {key!r}{_did_you_mean(key, _TOP_LEVEL_KEYS)}:"
        " expected only [orchestrator], [cluster] and [workers.NAME] tables"
        for key in data
        if key not in _TOP_LEVEL_KEYS
    ]


def _parse_orchestrator(table: object) -> tuple[OrchestratorConfig | None, list[_Problem]]:
    if not isinstance(table, Mapping):
        return None, [(None, f"must be a table, got {_describe(table)}")]
    return _structure(OrchestratorConfig, table, known_keys=_ORCHESTRATOR_KEYS)


def _parse_cluster(table: object) -> tuple[ClusterConfig | None, list[_Problem]]:
    if not isinstance(table, Mapping):
        return None, [(None, f"must be a table, got {_describe(table)}")]
    return _structure(ClusterConfig, table, known_keys=_CLUSTER_KEYS)


def _parse_workers(
    table: object, import_functions: bool
) -> tuple[list[_ParsedWorker], str | None]:
    if not isinstance(table, Mapping):
        return [], f"'workers' must hold [workers.NAME] tables, got {_describe(table)}"
    parsed = [_parse_worker(name, worker, import_functions) for name, worker in table.items()]
    return parsed, None


# --- one worker ----------------------------------------------------------------------


def _parse_worker(name: str, table: object, import_functions: bool) -> _ParsedWorker:
    if not isinstance(table, Mapping):
        return _ParsedWorker(
            name=name,
            graph_spec=_placeholder_spec(name),
            registration=None,
            problems=[(None, f"must be a table ([workers.{name}]), got {_describe(table)}")],
        )
    fields = dict(table)
    fn_ref, fn, problems = _worker_function(fields.pop("fn", None), import_functions)
    if "name" in fields:
        del fields["name"]
        problems.append(("name", "unknown key: a worker's name is its table key"))
    if "interval_seconds" in fields and "cron" in fields:
        problems.append(("cron", "set either 'interval_seconds' or 'cron', not both"))

    spec, spec_problems = _structure(WorkerSpec, {**fields, "name": name}, known_keys=_WORKER_KEYS)
    problems += [_name_problem_without_key(key, what) for key, what in spec_problems]
    problems = _in_key_order(problems, table)

    registration = None
    if not problems and spec is not None and fn is not None and fn_ref is not None:
        registration = WorkerRegistration(spec=spec, fn=fn, fn_ref=fn_ref)
    return _ParsedWorker(
        name=name,
        graph_spec=_graph_spec(name, spec, {key for key, _ in problems}),
        registration=registration,
        problems=problems,
        ignored=_ignored_keys(table, registration.spec) if registration else [],
    )


#: Keys that only workers of some modes read.
_MODES_READING = {
    "interval_seconds": {Mode.SCHEDULED},
    "cron": {Mode.SCHEDULED},
    "timezone": {Mode.SCHEDULED},
    "run_at_start": {Mode.SCHEDULED},
    "jitter_seconds": {Mode.SCHEDULED},
    "stall_seconds": {Mode.CONTINUOUS},
}


def _ignored_keys(table: Mapping[str, Any], spec: WorkerSpec) -> list[tuple[str, str]]:
    """Keys written in `table` that `spec`'s worker never reads, in the file's order.

    Not errors: a worker switched to `triggered` for a while keeps its schedule keys.
    """
    ignored = []
    for key in table:
        if spec.mode not in _MODES_READING.get(key, set(Mode)):
            ignored.append((key, f"for mode {spec.mode.value!r}"))
        elif key == "run_at_start" and spec.cron is not None:
            ignored.append((key, "with 'cron' (a cron schedule fires at its own times)"))
        elif key == "timezone" and spec.cron is None:
            ignored.append((key, "without 'cron' (it is the cron expression's time zone)"))
    return ignored


def _worker_function(
    value: object, import_functions: bool
) -> tuple[str | None, Callable[..., Any] | None, list[_Problem]]:
    if value is None:
        return None, None, [("fn", 'missing: every worker needs "package.module:function"')]
    try:
        ref = _converter.structure(value, str)
        if not import_functions:
            _split_reference(ref)
            return ref, _not_imported(ref), []
        fn = import_function(ref)
    except (_InvalidValue, ValueError) as exc:
        return None, None, [("fn", str(exc))]
    problem = worker_function_problem(fn)
    if problem is not None:
        return None, None, [("fn", f"{ref!r} {problem}")]
    return ref, fn, []


def _name_problem_without_key(key: str | None, what: str) -> _Problem:
    # The name comes from the table header, not from a key the user wrote.
    return (None, f"invalid name: {what}") if key == "name" else (key, what)


def _in_key_order(problems: list[_Problem], table: Mapping[str, Any]) -> list[_Problem]:
    order = {key: index for index, key in enumerate(table)}
    return sorted(problems, key=lambda problem: order.get(problem[0] or "", -1))


def _graph_spec(name: str, spec: WorkerSpec | None, bad_keys: set[str | None]) -> WorkerSpec:
    """The spec as the graph checks should see it.

    A worker with problems stays in the graph, so that others may still name it, but
    without the references that are already reported, so nothing is reported twice
    (a self-dependency is also a one-worker cycle).
    """
    if spec is None:
        return _placeholder_spec(name)
    with attrs.validators.disabled():
        if "depends_on" in bad_keys:
            spec = attrs.evolve(spec, depends_on=())
        if "blocks" in bad_keys:
            spec = attrs.evolve(spec, blocks=())
    return spec


def _placeholder_spec(name: str) -> WorkerSpec:
    with attrs.validators.disabled():
        return WorkerSpec(name=name)


# --- structuring and validating one table ---------------------------------------------


def _structure(
    cls: type[_T], data: Mapping[str, Any], *, known_keys: Iterable[str]
) -> tuple[_T | None, list[_Problem]]:
    """Structure `data` into `cls`, finding every problem rather than the first.

    Validators are disabled while structuring (attrs stops at the first failing one),
    then each is run by hand. Keys whose values could not be structured are dropped
    and the rest structured again, so their validators still run. The disabling is
    process-wide; configs are loaded at start-up, before any worker thread exists.
    """
    problems: list[_Problem] = []
    bad_keys: set[str | None] = set()
    with attrs.validators.disabled():
        try:
            instance: _T | None = _converter.structure(data, cls)
        except ClassValidationError as exc:
            problems = _structuring_problems(exc, known_keys)
            bad_keys = {key for key, _ in problems}
            rest = {key: value for key, value in data.items() if key not in bad_keys}
            try:
                instance = _converter.structure(rest, cls)
            except ClassValidationError:
                instance = None
    if instance is not None:
        problems += _validator_problems(instance, skip=bad_keys)
    return instance, problems


def _structuring_problems(exc: ClassValidationError, known_keys: Iterable[str]) -> list[_Problem]:
    with_notes, without_notes = exc.group_exceptions()
    problems: list[_Problem] = [(note.name, _explain(error)) for error, note in with_notes]
    for error in without_notes:
        if isinstance(error, ForbiddenExtraKeysError):
            problems += [
                (key, f"unknown key{_did_you_mean(key, known_keys)}")
                for key in sorted(error.extra_fields)
            ]
        else:
            problems.append((None, _explain(error)))
    return problems


def _validator_problems(instance: AttrsInstance, *, skip: set[str | None]) -> list[_Problem]:
    problems: list[_Problem] = []
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
    if isinstance(error, _InvalidValue):
        return str(error)
    return f"invalid value ({_exception_text(error)})"


# --- strict structure hooks ------------------------------------------------------------


class _InvalidValue(TypeError):
    """A TOML value of the wrong type or out of its allowed set; the message says which."""


def _structure_int(value: object, _: type) -> int:
    # bool is an int subclass: `true` must not pass as 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise _InvalidValue(f"must be an integer, got {_describe(value)}")
    return value


def _structure_float(value: object, _: type) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _InvalidValue(f"must be a number, got {_describe(value)}")
    try:
        return float(value)
    except OverflowError:
        # An integer beyond any float is beyond every range too: the key's validator says
        # so, with the range, as it would for any other value out of it.
        return value  # type: ignore[return-value]


def _structure_str(value: object, _: type) -> str:
    if not isinstance(value, str):
        raise _InvalidValue(f"must be a string, got {_describe(value)}")
    return value


def _structure_bool(value: object, _: type) -> bool:
    if not isinstance(value, bool):
        raise _InvalidValue(f"must be true or false, got {_describe(value)}")
    return value


def _structure_choice(value: object, cls: type[enum.Enum]) -> enum.Enum:
    if isinstance(value, cls):
        return value
    choices = {_choice_label(member): member for member in cls}
    if isinstance(value, str) and value in choices:
        return choices[value]
    raise _InvalidValue(f"must be one of {', '.join(choices)}; got {_describe(value)}")


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
        raise _InvalidValue(f"must be an array of worker names, got {_describe(value)}")
    wrong = [
        f"item {i} is {_describe(item)}"
        for i, item in enumerate(value)
        if not isinstance(item, str)
    ]
    if wrong:
        raise _InvalidValue(f"must be an array of worker names: {'; '.join(wrong)}")
    return tuple(value)


def _is_params(type_: object) -> bool:
    return type_ == Mapping[str, Any]


def _structure_params(value: object, _: object) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise _InvalidValue(f"must be a table, got {_describe(value)}")
    return dict(value)


def _make_converter() -> cattrs.Converter:
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


_converter = _make_converter()


# --- wording -------------------------------------------------------------------------


_TOML_TYPES: tuple[tuple[type, str], ...] = (
    (bool, "boolean"),
    (int, "integer"),
    (float, "float"),
    (str, "string"),
    (list, "array"),
    (Mapping, "table"),
)


def _describe(value: object) -> str:
    """A value as a TOML user would name it: `string '5'`, `boolean true`."""
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    text = shown_value(value)
    if text.startswith("an integer of "):
        return text
    kind = next((name for cls, name in _TOML_TYPES if isinstance(value, cls)), None)
    return f"{kind} {text}" if kind else f"{type(value).__name__} {text}"


def _did_you_mean(key: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(key, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _exception_text(exc: BaseException) -> str:
    try:
        text = str(exc)
    except Exception:
        text = "<unprintable>"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _is_dotted_name(text: str) -> bool:
    return bool(text) and all(part.isidentifier() for part in text.split("."))


def _is_same_or_parent(name: str, module_name: str) -> bool:
    return module_name == name or module_name.startswith(name + ".")
