"""Loading the TOML configuration, reporting every problem in it at once.

A config is read into plain dicts by `tomllib`, then structured into `WorkerSpec` and
`OrchestratorConfig` by a strict cattrs converter. Nothing stops at the first problem: each
table is structured with detailed validation, then re-structured without the values that
failed so that the validators of the remaining keys, the `fn` imports and the graph checks
still run. Everything found becomes one line of a single `ConfigError`.

Here: reading the file and the whole config (tables, workers, the graph). One table's
structuring and the wording of its problems are in `_config_tables`; importing a worker's
function from its reference is in `_import_ref`.
"""

from __future__ import annotations

import os
import pathlib
import sys
import tomllib
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from ._config_tables import (
    InvalidValue,
    Problem,
    converter,
    describe_value,
    did_you_mean,
    structure_table,
)
from ._errors import ConfigError
from ._graph import graph_problems
from ._import_ref import import_function, not_imported, split_reference
from ._spec import (
    ClusterConfig,
    Mode,
    OrchestratorConfig,
    WorkerSpec,
    worker_function_problem,
)

__all__ = [
    "JobdeckConfig",
    "WorkerRegistration",
    "import_function",
    "load_config",
    "parse_config",
]


_TOP_LEVEL_KEYS = ("orchestrator", "cluster", "workers")
_WORKER_KEYS = ("fn", *(f.name for f in attrs.fields(WorkerSpec) if f.name != "name"))
_ORCHESTRATOR_KEYS = tuple(f.name for f in attrs.fields(OrchestratorConfig))
_CLUSTER_KEYS = tuple(f.name for f in attrs.fields(ClusterConfig))



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
    problems: list[Problem]
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
        raise ConfigError([f"{source}: must be a table, got {describe_value(data)}"])
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
        f"unknown top-level key {key!r}{did_you_mean(key, _TOP_LEVEL_KEYS)}:"
        " expected only [orchestrator], [cluster] and [workers.NAME] tables"
        for key in data
        if key not in _TOP_LEVEL_KEYS
    ]


def _parse_orchestrator(table: object) -> tuple[OrchestratorConfig | None, list[Problem]]:
    if not isinstance(table, Mapping):
        return None, [(None, f"must be a table, got {describe_value(table)}")]
    return structure_table(OrchestratorConfig, table, known_keys=_ORCHESTRATOR_KEYS)


def _parse_cluster(table: object) -> tuple[ClusterConfig | None, list[Problem]]:
    if not isinstance(table, Mapping):
        return None, [(None, f"must be a table, got {describe_value(table)}")]
    return structure_table(ClusterConfig, table, known_keys=_CLUSTER_KEYS)


def _parse_workers(
    table: object, import_functions: bool
) -> tuple[list[_ParsedWorker], str | None]:
    if not isinstance(table, Mapping):
        return [], f"'workers' must hold [workers.NAME] tables, got {describe_value(table)}"
    parsed = [_parse_worker(name, worker, import_functions) for name, worker in table.items()]
    return parsed, None


# --- one worker ----------------------------------------------------------------------


def _parse_worker(name: str, table: object, import_functions: bool) -> _ParsedWorker:
    if not isinstance(table, Mapping):
        return _ParsedWorker(
            name=name,
            graph_spec=_placeholder_spec(name),
            registration=None,
            problems=[(None, f"must be a table ([workers.{name}]), got {describe_value(table)}")],
        )
    fields = dict(table)
    fn_ref, fn, problems = _worker_function(fields.pop("fn", None), import_functions)
    if "name" in fields:
        del fields["name"]
        problems.append(("name", "unknown key: a worker's name is its table key"))
    if "interval_seconds" in fields and "cron" in fields:
        problems.append(("cron", "set either 'interval_seconds' or 'cron', not both"))

    spec, spec_problems = structure_table(
        WorkerSpec, {**fields, "name": name}, known_keys=_WORKER_KEYS
    )
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
) -> tuple[str | None, Callable[..., Any] | None, list[Problem]]:
    if value is None:
        return None, None, [("fn", 'missing: every worker needs "package.module:function"')]
    try:
        ref = converter.structure(value, str)
        if not import_functions:
            split_reference(ref)
            return ref, not_imported(ref), []
        fn = import_function(ref)
    except (InvalidValue, ValueError) as exc:
        return None, None, [("fn", str(exc))]
    problem = worker_function_problem(fn)
    if problem is not None:
        return None, None, [("fn", f"{ref!r} {problem}")]
    return ref, fn, []


def _name_problem_without_key(key: str | None, what: str) -> Problem:
    # The name comes from the table header, not from a key the user wrote.
    return (None, f"invalid name: {what}") if key == "name" else (key, what)


def _in_key_order(problems: list[Problem], table: Mapping[str, Any]) -> list[Problem]:
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
