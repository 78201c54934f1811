"""Loading TOML configs: values, and every problem reported at once."""

from __future__ import annotations

import pathlib
import textwrap

import pytest

from jobdeck import Orchestrator
from jobdeck._config import (
    JobdeckConfig,
    WorkerRegistration,
    import_function,
    load_config,
    parse_config,
)
from jobdeck._errors import ConfigError
from jobdeck._spec import Mode, OrchestratorConfig, Priority, WorkerSpec
from tests.core import sample_workers

OK = "tests.core.sample_workers:ok"


def write_config(tmp_path: pathlib.Path, text: str) -> pathlib.Path:
    path = tmp_path / "jobdeck.toml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems_of(tmp_path: pathlib.Path, text: str) -> tuple[str, ...]:
    path = write_config(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value.problems


def one_worker(body: str, fn: str = OK) -> str:
    return f'[workers.w]\nfn = "{fn}"\n{textwrap.dedent(body)}'


# --- a good config --------------------------------------------------------------------


def test_good_config_loads_values(tmp_path: pathlib.Path) -> None:
    """A valid config gives the orchestrator settings and workers as written."""
    path = write_config(
        tmp_path,
        f"""
        [orchestrator]
        max_concurrent_workers = 3
        shutdown_grace_seconds = 10
        store = "state.db"
        history_per_worker = 50

        [workers.fetch-data]
        fn = "{OK}"
        mode = "scheduled"
        interval_seconds = 60
        priority = "high"
        params = {{ rows = 100, url = "https://example.org" }}

        [workers.report]
        fn = "tests.core.sample_workers:sync_ok"
        mode = "triggered"
        depends_on = ["fetch-data"]
        priority = "low"
        """,
    )
    config = load_config(path)
    assert isinstance(config, JobdeckConfig)
    assert config.path == path
    assert config.orchestrator == OrchestratorConfig(
        max_concurrent_workers=3,
        shutdown_grace_seconds=10.0,
        store="state.db",
        history_per_worker=50,
    )
    fetch, report = config.workers
    assert isinstance(fetch, WorkerRegistration)
    assert fetch.spec.name == "fetch-data"
    assert fetch.spec.mode is Mode.SCHEDULED
    assert fetch.spec.interval_seconds == 60.0
    assert fetch.spec.priority is Priority.HIGH
    assert dict(fetch.spec.params) == {"rows": 100, "url": "https://example.org"}
    assert fetch.fn is sample_workers.ok
    assert fetch.fn_ref == OK
    assert report.spec.mode is Mode.TRIGGERED
    assert report.spec.depends_on == ("fetch-data",)
    assert report.spec.priority is Priority.LOW
    assert report.fn is sample_workers.sync_ok


def test_workers_keep_file_order(tmp_path: pathlib.Path) -> None:
    """Workers come back in the order the file lists them."""
    names = ["zeta", "alpha", "mid"]
    text = "".join(f'[workers.{name}]\nfn = "{OK}"\n' for name in names)
    config = load_config(write_config(tmp_path, text))
    assert [w.spec.name for w in config.workers] == names


def test_empty_config_uses_defaults(tmp_path: pathlib.Path) -> None:
    """An empty file is valid: default orchestrator settings and no workers."""
    config = load_config(write_config(tmp_path, ""))
    assert config.orchestrator == OrchestratorConfig()
    assert config.workers == ()


def test_int_accepted_where_float_expected(tmp_path: pathlib.Path) -> None:
    """An integer is accepted for a float key and stored as a float."""
    config = load_config(write_config(tmp_path, one_worker("retry_backoff_seconds = 2")))
    value = config.workers[0].spec.retry_backoff_seconds
    assert value == 2.0
    assert isinstance(value, float)


def test_single_name_accepted_for_depends_on(tmp_path: pathlib.Path) -> None:
    """A single string in `depends_on` means a list of one name, as in the Python API."""
    text = f'[workers.a]\nfn = "{OK}"\n[workers.b]\nfn = "{OK}"\ndepends_on = "a"\n'
    config = load_config(write_config(tmp_path, text))
    assert config.workers[1].spec.depends_on == ("a",)


def test_timeout_zero_allowed_for_continuous(tmp_path: pathlib.Path) -> None:
    """`timeout_seconds = 0` (no timeout) is accepted for a continuous worker."""
    text = one_worker('mode = "continuous"\ntimeout_seconds = 0')
    config = load_config(write_config(tmp_path, text))
    assert config.workers[0].spec.timeout_seconds == 0.0


def test_parse_config_names_source(tmp_path: pathlib.Path) -> None:
    """parse_config names problems after `source` and gives no path."""
    config = parse_config({"workers": {"w": {"fn": OK}}}, source="inline")
    assert config.path is None
    with pytest.raises(ConfigError) as info:
        parse_config({"workers": {"w": {}}}, source="inline")
    assert info.value.problems == (
        "inline: worker 'w': key 'fn': missing: every worker needs \"package.module:function\"",
    )


def test_keys_a_worker_ignores_are_warnings(tmp_path: pathlib.Path) -> None:
    """Keys written for a mode or schedule the worker does not have come back as warnings."""
    path = write_config(
        tmp_path,
        f"""
        [workers.on-demand]
        fn = "{OK}"
        mode = "triggered"
        timezone = "Europe/Paris"
        jitter_seconds = 2
        timeout_seconds = 5

        [workers.hourly]
        fn = "{OK}"
        cron = "0 * * * *"
        run_at_start = false
        stall_seconds = 10

        [workers.every-minute]
        fn = "{OK}"
        interval_seconds = 60
        timezone = "Europe/Paris"
        run_at_start = false
        """,
    )
    config = load_config(path)
    assert config.warnings == (
        f"{path}: worker 'on-demand': warning: key 'timezone' is ignored for mode 'triggered'",
        f"{path}: worker 'on-demand': warning: key 'jitter_seconds' is ignored"
        " for mode 'triggered'",
        f"{path}: worker 'hourly': warning: key 'run_at_start' is ignored"
        " with 'cron' (a cron schedule fires at its own times)",
        f"{path}: worker 'hourly': warning: key 'stall_seconds' is ignored for mode 'scheduled'",
        f"{path}: worker 'every-minute': warning: key 'timezone' is ignored"
        " without 'cron' (it is the cron expression's time zone)",
    )


def test_config_using_every_key_it_writes_has_no_warnings(tmp_path: pathlib.Path) -> None:
    """Keys each worker's mode reads give no warnings."""
    path = write_config(
        tmp_path,
        f"""
        [workers.scheduled]
        fn = "{OK}"
        interval_seconds = 60
        run_at_start = false
        jitter_seconds = 1

        [workers.cron]
        fn = "{OK}"
        cron = "0 9 * * *"
        timezone = "Europe/Paris"

        [workers.loop]
        fn = "{OK}"
        mode = "continuous"
        stall_seconds = 30
        timeout_seconds = 0
        """,
    )
    assert load_config(path).warnings == ()


# --- file-level problems -------------------------------------------------------------


def test_missing_file(tmp_path: pathlib.Path) -> None:
    """A file that does not exist is one clear message naming it."""
    path = tmp_path / "absent.toml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems == (f"{path}: no such file",)


def test_directory_instead_of_file(tmp_path: pathlib.Path) -> None:
    """A directory given as the config is a clear message."""
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert info.value.problems == (f"{tmp_path}: is a directory, not a config file",)


def test_toml_syntax_error_has_line(tmp_path: pathlib.Path) -> None:
    """A TOML syntax error names the file and the line."""
    path = write_config(tmp_path, '[workers.w]\nfn = "x"\nmode = \n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (problem,) = info.value.problems
    assert problem.startswith(f"{path}: invalid TOML: ")
    assert "line 3" in problem


@pytest.mark.parametrize(
    "value",
    ["[" * 5000 + "]" * 5000, "{ a = " * 5000 + "1" + " }" * 5000],
    ids=["arrays", "inline-tables"],
)
def test_toml_nested_thousands_deep(tmp_path: pathlib.Path, value: str) -> None:
    """TOML nested thousands of levels deep is one message naming the file."""
    path = write_config(tmp_path, f"a = {value}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems == (
        f"{path}: cannot be read: arrays or tables are nested too deeply",
    )


def test_value_nested_thousands_deep_in_python() -> None:
    """A value nested thousands deep is described in a few characters, not a RecursionError."""
    deep: list[object] = []
    for _ in range(100_000):
        deep = [deep]
    data = {"workers": {"w": {"fn": OK, "depends_on": deep, "interval_seconds": deep}}}
    with pytest.raises(ConfigError) as info:
        parse_config(data, source="deep")
    assert info.value.problems == (
        "deep: worker 'w': key 'depends_on': must be an array of worker names:"
        " item 0 is array [[[[...]]]]",
        "deep: worker 'w': key 'interval_seconds': must be a number, got array [[[[...]]]]",
    )


def test_integer_of_thousands_of_digits(tmp_path: pathlib.Path) -> None:
    """An integer too long for Python to read is one message naming the file."""
    path = write_config(tmp_path, f"[orchestrator]\nhistory_per_worker = {'9' * 5000}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems == (
        f"{path}: invalid TOML: an integer of more than 4300 digits",
    )


def test_path_given_as_string_is_named_as_given(tmp_path: pathlib.Path) -> None:
    """Messages name the file exactly as the caller spelled it."""
    path = str(write_config(tmp_path, "[orchestrator]\nstore = 1\n"))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems[0].startswith(f"{path}: [orchestrator]: ")


def test_unknown_top_level_key(tmp_path: pathlib.Path) -> None:
    """An unknown top-level table is reported, with a suggestion."""
    path = tmp_path / "jobdeck.toml"
    problems = problems_of(tmp_path, f'[worker.w]\nfn = "{OK}"\n')
    assert problems == (
        f"{path}: unknown top-level key 'worker' (did you mean 'workers'?):"
        " expected only [orchestrator], [cluster] and [workers.NAME] tables",
    )


def test_workers_not_a_table(tmp_path: pathlib.Path) -> None:
    """`workers` that is not a table of tables is reported."""
    path = tmp_path / "jobdeck.toml"
    problems = problems_of(tmp_path, "workers = 3\n")
    assert problems == (f"{path}: 'workers' must hold [workers.NAME] tables, got integer 3",)


# --- [orchestrator] problems ---------------------------------------------------------


def test_unknown_orchestrator_key(tmp_path: pathlib.Path) -> None:
    """An unknown key in [orchestrator] is reported, with a suggestion."""
    path = tmp_path / "jobdeck.toml"
    problems = problems_of(tmp_path, '[orchestrator]\nstor = "x.db"\n')
    assert problems == (f"{path}: [orchestrator]: key 'stor': unknown key (did you mean 'store'?)",)


def test_orchestrator_wrong_type(tmp_path: pathlib.Path) -> None:
    """A string where [orchestrator] expects a number is reported."""
    path = tmp_path / "jobdeck.toml"
    problems = problems_of(tmp_path, '[orchestrator]\nshutdown_grace_seconds = "30"\n')
    assert problems == (
        f"{path}: [orchestrator]: key 'shutdown_grace_seconds': must be a number, got string '30'",
    )


def test_orchestrator_value_out_of_range(tmp_path: pathlib.Path) -> None:
    """An [orchestrator] value its validator rejects is reported."""
    path = tmp_path / "jobdeck.toml"
    problems = problems_of(tmp_path, "[orchestrator]\nmax_concurrent_workers = 0\n")
    assert problems == (
        f"{path}: [orchestrator]: key 'max_concurrent_workers':"
        " must be an integer from 1 to 1000000; got 0",
    )


def test_orchestrator_not_a_table(tmp_path: pathlib.Path) -> None:
    """`orchestrator` that is not a table is reported."""
    path = tmp_path / "jobdeck.toml"
    problems = problems_of(tmp_path, "orchestrator = 5\n")
    assert problems == (f"{path}: [orchestrator]: must be a table, got integer 5",)


# --- worker key problems -------------------------------------------------------------


def test_unknown_worker_key(tmp_path: pathlib.Path) -> None:
    """An unknown key in a worker is reported, with a suggestion."""
    path = tmp_path / "jobdeck.toml"
    problems = problems_of(tmp_path, one_worker("intervl_seconds = 5"))
    assert problems == (
        f"{path}: worker 'w': key 'intervl_seconds': unknown key"
        " (did you mean 'interval_seconds'?)",
    )


def test_name_key_in_worker(tmp_path: pathlib.Path) -> None:
    """A `name` key in a worker is rejected: the table key is the name."""
    path = tmp_path / "jobdeck.toml"
    problems = problems_of(tmp_path, one_worker('name = "other"'))
    assert problems == (
        f"{path}: worker 'w': key 'name': unknown key: a worker's name is its table key",
    )


def test_invalid_worker_name(tmp_path: pathlib.Path) -> None:
    """A table key that is not a valid worker name is reported without a key."""
    path = tmp_path / "jobdeck.toml"
    problems = problems_of(tmp_path, f'[workers."a/b"]\nfn = "{OK}"\n')
    assert problems == (
        f"{path}: worker 'a/b': invalid name: must be a non-empty name without '/'"
        " or surrounding spaces, got 'a/b'",
    )


def test_worker_not_a_table(tmp_path: pathlib.Path) -> None:
    """A worker entry that is not a table is reported."""
    path = tmp_path / "jobdeck.toml"
    problems = problems_of(tmp_path, "[workers]\nw = 3\n")
    assert problems == (f"{path}: worker 'w': must be a table ([workers.w]), got integer 3",)


def test_bool_is_not_an_integer(tmp_path: pathlib.Path) -> None:
    """`true` is not accepted where an integer is expected."""
    path = tmp_path / "jobdeck.toml"
    problems = problems_of(tmp_path, one_worker("max_retries = true"))
    assert problems == (
        f"{path}: worker 'w': key 'max_retries': must be an integer, got boolean true",
    )


def test_float_is_not_an_integer(tmp_path: pathlib.Path) -> None:
    """A float is not truncated into an integer key."""
    path = tmp_path / "jobdeck.toml"
    problems = problems_of(tmp_path, one_worker("max_retries = 2.5"))
    assert problems == (
        f"{path}: worker 'w': key 'max_retries': must be an integer, got float 2.5",
    )


def test_string_is_not_a_number(tmp_path: pathlib.Path) -> None:
    """`"5"` is not accepted where a number is expected."""
    path = tmp_path / "jobdeck.toml"
    problems = problems_of(tmp_path, one_worker('interval_seconds = "5"'))
    assert problems == (
        f"{path}: worker 'w': key 'interval_seconds': must be a number, got string '5'",
    )


def test_number_is_not_a_string(tmp_path: pathlib.Path) -> None:
    """A number is not accepted where a string is expected."""
    path = tmp_path / "jobdeck.toml"
    problems = problems_of(tmp_path, one_worker("timezone = 5"))
    assert problems == (f"{path}: worker 'w': key 'timezone': must be a string, got integer 5",)


def test_string_is_not_a_bool(tmp_path: pathlib.Path) -> None:
    """`"yes"` is not accepted where true/false is expected."""
    path = tmp_path / "jobdeck.toml"
    problems = problems_of(tmp_path, one_worker('enabled = "yes"'))
    assert problems == (
        f"{path}: worker 'w': key 'enabled': must be true or false, got string 'yes'",
    )


def test_invalid_mode_lists_allowed_values(tmp_path: pathlib.Path) -> None:
    """An unknown mode is reported with the allowed modes."""
    path = tmp_path / "jobdeck.toml"
    problems = problems_of(tmp_path, one_worker('mode = "sometimes"'))
    assert problems == (
        f"{path}: worker 'w': key 'mode': must be one of scheduled, triggered, continuous;"
        " got string 'sometimes'",
    )


def test_invalid_priority_lists_allowed_values(tmp_path: pathlib.Path) -> None:
    """An unknown priority is reported with the allowed priorities."""
    path = tmp_path / "jobdeck.toml"
    problems = problems_of(tmp_path, one_worker('priority = "urgent"'))
    assert problems == (
        f"{path}: worker 'w': key 'priority': must be one of low, normal, high, critical;"
        " got string 'urgent'",
    )


def test_non_positive_interval(tmp_path: pathlib.Path) -> None:
    """A zero interval is reported."""
    path = tmp_path / "jobdeck.toml"
    problems = problems_of(tmp_path, one_worker("interval_seconds = 0"))
    assert problems == (
        f"{path}: worker 'w': key 'interval_seconds':"
        " must be from 0.001 to 315360000 seconds (ten years); got 0.0",
    )


def test_every_validator_failure_in_one_worker(tmp_path: pathlib.Path) -> None:
    """Several out-of-range values in one worker are each reported."""
    path = tmp_path / "jobdeck.toml"
    body = """
        interval_seconds = -1
        max_retries = -1
        jitter_seconds = -2
        circuit_cooldown_seconds = 0
        """
    problems = problems_of(tmp_path, one_worker(body))
    assert problems == (
        f"{path}: worker 'w': key 'interval_seconds':"
        " must be from 0.001 to 315360000 seconds (ten years); got -1.0",
        f"{path}: worker 'w': key 'max_retries': must be an integer from 0 to 1000000; got -1",
        f"{path}: worker 'w': key 'jitter_seconds':"
        " must be 0 or from 0.001 to 315360000 seconds (ten years); got -2.0",
        f"{path}: worker 'w': key 'circuit_cooldown_seconds':"
        " must be from 0.001 to 315360000 seconds (ten years), or inf (never); got 0.0",
    )


def test_timeout_zero_only_for_continuous(tmp_path: pathlib.Path) -> None:
    """`timeout_seconds = 0` on a scheduled worker is reported."""
    path = tmp_path / "jobdeck.toml"
    problems = problems_of(tmp_path, one_worker("timeout_seconds = 0"))
    assert problems == (
        f"{path}: worker 'w': key 'timeout_seconds':"
        " may be 0 (no timeout) only for continuous workers",
    )


def test_mode_typo_does_not_blame_timeout(tmp_path: pathlib.Path) -> None:
    """A bad mode is reported alone, not also as a timeout only continuous may have."""
    path = tmp_path / "jobdeck.toml"
    problems = problems_of(tmp_path, one_worker('mode = "continous"\ntimeout_seconds = 0'))
    assert problems == (
        f"{path}: worker 'w': key 'mode': must be one of scheduled, triggered, continuous;"
        " got string 'continous'",
    )


def test_interval_and_cron_both_set(tmp_path: pathlib.Path) -> None:
    """Setting both `interval_seconds` and `cron` asks for one of them."""
    path = tmp_path / "jobdeck.toml"
    problems = problems_of(tmp_path, one_worker('interval_seconds = 60\ncron = "*/5 * * * *"'))
    assert problems == (
        f"{path}: worker 'w': key 'cron': set either 'interval_seconds' or 'cron', not both",
    )


def test_invalid_cron(tmp_path: pathlib.Path) -> None:
    """A cron expression that does not parse is reported."""
    path = tmp_path / "jobdeck.toml"
    problems = problems_of(tmp_path, one_worker('cron = "every tuesday"'))
    assert problems == (
        f"{path}: worker 'w': key 'cron': is not a valid cron expression: 'every tuesday'",
    )


@pytest.mark.parametrize(
    "expression",
    ["0 0 31 2 *", "0 0 30 2 *", "0 0 31 4,6,9,11 *", "0 0 31 2 * 30", "59 23 L * 5#1"],
)
def test_cron_that_never_fires(tmp_path: pathlib.Path, expression: str) -> None:
    """A cron no date matches (31 February) is reported at load, not at every start."""
    path = tmp_path / "jobdeck.toml"
    problems = problems_of(tmp_path, one_worker(f'cron = "{expression}"'))
    assert problems == (
        f"{path}: worker 'w': key 'cron': never fires:"
        f" no time in the next 50 years matches {expression!r}",
    )


def test_cron_with_a_year_field(tmp_path: pathlib.Path) -> None:
    """A cron with a year field, which would run out of fire times, is reported."""
    path = tmp_path / "jobdeck.toml"
    problems = problems_of(tmp_path, one_worker('cron = "0 0 1 1 * 0 2030"'))
    assert problems == (
        f"{path}: worker 'w': key 'cron': has a year field, which jobdeck does not support"
        " (a schedule must not run out of times): '0 0 1 1 * 0 2030'",
    )


@pytest.mark.parametrize("expression", ["0 0 29 2 *", "0 0 * 2 5#5", "0 0 L 2 *", "@yearly"])
def test_rare_cron_loads(tmp_path: pathlib.Path, expression: str) -> None:
    """A cron that fires rarely (29 February, years apart) is not mistaken for never."""
    config = load_config(write_config(tmp_path, one_worker(f'cron = "{expression}"')))
    assert config.workers[0].spec.cron == expression


def test_cron_that_never_fires_rejected_by_the_python_api() -> None:
    """`WorkerSpec(cron=...)` refuses what load refuses, naming the key."""
    with pytest.raises(ValueError, match=r"^'cron' never fires"):
        WorkerSpec(name="w", cron="0 0 31 2 *")


def test_invalid_timezone(tmp_path: pathlib.Path) -> None:
    """An unknown time zone is reported."""
    path = tmp_path / "jobdeck.toml"
    problems = problems_of(tmp_path, one_worker('timezone = "Mars/Olympus"'))
    assert problems == (
        f"{path}: worker 'w': key 'timezone': is not a known time zone: 'Mars/Olympus'",
    )


def test_depends_on_item_not_a_string(tmp_path: pathlib.Path) -> None:
    """A non-string in `depends_on` is reported with its position."""
    path = tmp_path / "jobdeck.toml"
    problems = problems_of(tmp_path, one_worker("depends_on = [3]"))
    assert problems == (
        f"{path}: worker 'w': key 'depends_on': must be an array of worker names:"
        " item 0 is integer 3",
    )


def test_params_not_a_table(tmp_path: pathlib.Path) -> None:
    """`params` that is not a table is reported."""
    path = tmp_path / "jobdeck.toml"
    problems = problems_of(tmp_path, one_worker('params = "rows=3"'))
    assert problems == (f"{path}: worker 'w': key 'params': must be a table, got string 'rows=3'",)


# --- references between workers ------------------------------------------------------


def test_self_dependency_reported_once(tmp_path: pathlib.Path) -> None:
    """A worker depending on itself is one problem, not also a one-worker cycle."""
    path = tmp_path / "jobdeck.toml"
    problems = problems_of(tmp_path, one_worker('depends_on = ["w"]'))
    assert problems == (
        f"{path}: worker 'w': key 'depends_on': worker 'w' cannot depend on itself",
    )


def test_depends_on_and_blocks_same_worker(tmp_path: pathlib.Path) -> None:
    """Depending on and blocking the same worker is reported."""
    path = tmp_path / "jobdeck.toml"
    text = f'[workers.a]\nfn = "{OK}"\n' + one_worker('depends_on = ["a"]\nblocks = ["a"]')
    problems = problems_of(tmp_path, text)
    assert problems == (f"{path}: worker 'w': key 'blocks': cannot both depend on and block a",)


def test_unknown_name_in_depends_on(tmp_path: pathlib.Path) -> None:
    """A dependency on a worker that does not exist is reported."""
    path = tmp_path / "jobdeck.toml"
    problems = problems_of(tmp_path, one_worker('depends_on = ["ghost"]'))
    assert problems == (f"{path}: worker 'w': key 'depends_on': unknown worker 'ghost'",)


def test_unknown_name_in_blocks(tmp_path: pathlib.Path) -> None:
    """Blocking a worker that does not exist is reported."""
    path = tmp_path / "jobdeck.toml"
    problems = problems_of(tmp_path, one_worker('blocks = ["ghost"]'))
    assert problems == (f"{path}: worker 'w': key 'blocks': unknown worker 'ghost'",)


def test_dependency_cycle(tmp_path: pathlib.Path) -> None:
    """A dependency cycle between workers is reported with its path."""
    path = tmp_path / "jobdeck.toml"
    text = (
        f'[workers.a]\nfn = "{OK}"\ndepends_on = ["b"]\n'
        f'[workers.b]\nfn = "{OK}"\ndepends_on = ["a"]\n'
    )
    problems = problems_of(tmp_path, text)
    assert problems == (f"{path}: worker 'a': key 'depends_on': dependency cycle a -> b -> a",)


def test_depends_on_worker_that_blocks_it(tmp_path: pathlib.Path) -> None:
    """Depending on a worker that blocks this one is reported."""
    path = tmp_path / "jobdeck.toml"
    text = (
        f'[workers.a]\nfn = "{OK}"\nblocks = ["b"]\n[workers.b]\nfn = "{OK}"\ndepends_on = ["a"]\n'
    )
    problems = problems_of(tmp_path, text)
    assert problems == (
        f"{path}: worker 'b': key 'depends_on': depends on 'a', which blocks it"
        " (blocks are symmetric)",
    )


def test_worker_with_problems_is_still_a_known_name(tmp_path: pathlib.Path) -> None:
    """Depending on a worker that has its own problems is not also an unknown name."""
    path = tmp_path / "jobdeck.toml"
    text = (
        f'[workers.a]\nfn = "{OK}"\ninterval_seconds = 0\n'
        f'[workers.b]\nfn = "{OK}"\ndepends_on = ["a"]\n'
    )
    problems = problems_of(tmp_path, text)
    assert problems == (
        f"{path}: worker 'a': key 'interval_seconds':"
        " must be from 0.001 to 315360000 seconds (ten years); got 0.0",
    )


# --- fn ------------------------------------------------------------------------------


def test_missing_fn(tmp_path: pathlib.Path) -> None:
    """A worker without `fn` is reported."""
    path = tmp_path / "jobdeck.toml"
    problems = problems_of(tmp_path, '[workers.w]\nmode = "triggered"\n')
    assert problems == (
        f"{path}: worker 'w': key 'fn': missing: every worker needs \"package.module:function\"",
    )


def test_fn_not_a_string(tmp_path: pathlib.Path) -> None:
    """An `fn` that is not a string is reported."""
    path = tmp_path / "jobdeck.toml"
    problems = problems_of(tmp_path, "[workers.w]\nfn = 5\n")
    assert problems == (f"{path}: worker 'w': key 'fn': must be a string, got integer 5",)


def test_fn_bad_format(tmp_path: pathlib.Path) -> None:
    """An `fn` without `module:function` shape is reported."""
    path = tmp_path / "jobdeck.toml"
    problems = problems_of(tmp_path, one_worker("", fn="tests.core.sample_workers.ok"))
    assert problems == (
        f"{path}: worker 'w': key 'fn': must look like 'package.module:function',"
        " got 'tests.core.sample_workers.ok'",
    )


def test_fn_module_not_found(tmp_path: pathlib.Path) -> None:
    """An `fn` whose module does not exist names that module."""
    path = tmp_path / "jobdeck.toml"
    problems = problems_of(tmp_path, one_worker("", fn="tests.core.no_such_module:ok"))
    assert problems == (
        f"{path}: worker 'w': key 'fn': cannot import 'tests.core.no_such_module:ok':"
        " no module named 'tests.core.no_such_module'",
    )


def test_fn_no_such_attribute(tmp_path: pathlib.Path) -> None:
    """An `fn` naming a function the module lacks is reported."""
    path = tmp_path / "jobdeck.toml"
    problems = problems_of(tmp_path, one_worker("", fn="tests.core.sample_workers:nope"))
    assert problems == (
        f"{path}: worker 'w': key 'fn': cannot import 'tests.core.sample_workers:nope':"
        " 'tests.core.sample_workers' has no attribute 'nope'",
    )


def test_fn_not_callable(tmp_path: pathlib.Path) -> None:
    """An `fn` naming something that is not callable is reported."""
    path = tmp_path / "jobdeck.toml"
    problems = problems_of(tmp_path, one_worker("", fn="tests.core.sample_workers:NOT_CALLABLE"))
    assert problems == (
        f"{path}: worker 'w': key 'fn': 'tests.core.sample_workers:NOT_CALLABLE'"
        " is not callable: it is integer 3",
    )


def test_fn_import_raises(tmp_path: pathlib.Path) -> None:
    """An `fn` whose module raises on import reports the error type and message only."""
    path = tmp_path / "jobdeck.toml"
    problems = problems_of(tmp_path, one_worker("", fn="tests.core.broken_worker_module:run"))
    assert problems == (
        f"{path}: worker 'w': key 'fn': cannot import 'tests.core.broken_worker_module:run':"
        " importing 'tests.core.broken_worker_module' raised RuntimeError: database URL not set",
    )
    assert "Traceback" not in problems[0]


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("async_generator", "an async generator function (async def with yield)"),
        ("generator", "a generator function (def with yield)"),
    ],
)
def test_fn_generator_function_rejected(tmp_path: pathlib.Path, name: str, kind: str) -> None:
    """An `fn` with `yield` (its runs would succeed having run nothing) is reported."""
    path = tmp_path / "jobdeck.toml"
    ref = f"tests.core.sample_workers:{name}"
    problems = problems_of(tmp_path, one_worker("", fn=ref))
    assert problems == (
        f"{path}: worker 'w': key 'fn': {ref!r} is {kind}: calling it runs none of its body;"
        " a worker is a plain async def or def without yield",
    )


@pytest.mark.parametrize(
    "fn",
    [sample_workers.async_generator, sample_workers.generator, sample_workers.AsyncGeneratorCall()],
)
def test_register_rejects_generator_functions(fn: object) -> None:
    """`Orchestrator.register` refuses a worker function with `yield`, as load does."""
    orch = Orchestrator()
    with pytest.raises(TypeError, match=r"^worker 'w': fn is an? (async )?generator function"):
        orch.register("w", fn)  # type: ignore[arg-type]
    assert orch.snapshot().workers == ()


# --- many problems at once -----------------------------------------------------------


def test_bad_value_does_not_hide_other_problems_in_worker(tmp_path: pathlib.Path) -> None:
    """A value that cannot be structured does not hide the worker's other problems."""
    path = tmp_path / "jobdeck.toml"
    body = """
        mode = 7
        interval_seconds = -5
        colour = "red"
        blocks = ["ghost"]
        """
    problems = problems_of(tmp_path, one_worker(body, fn="tests.core.sample_workers:nope"))
    assert problems == (
        f"{path}: worker 'w': key 'fn': cannot import 'tests.core.sample_workers:nope':"
        " 'tests.core.sample_workers' has no attribute 'nope'",
        f"{path}: worker 'w': key 'mode': must be one of scheduled, triggered, continuous;"
        " got integer 7",
        f"{path}: worker 'w': key 'interval_seconds':"
        " must be from 0.001 to 315360000 seconds (ten years); got -5.0",
        f"{path}: worker 'w': key 'colour': unknown key",
        f"{path}: worker 'w': key 'blocks': unknown worker 'ghost'",
    )


def test_problems_in_several_workers_all_reported(tmp_path: pathlib.Path) -> None:
    """Problems in the orchestrator and in several workers come in one ConfigError."""
    path = tmp_path / "jobdeck.toml"
    text = f"""
        [orchestrator]
        history_per_worker = "lots"

        [workers.a]
        fn = "{OK}"
        max_retries = true

        [workers.b]
        fn = "tests.core.broken_worker_module:run"
        priority = "urgent"

        [workers.c]
        fn = "{OK}"
        depends_on = ["d"]

        [workers.d]
        fn = "{OK}"
        depends_on = ["c"]
        """
    problems = problems_of(tmp_path, text)
    assert problems == (
        f"{path}: [orchestrator]: key 'history_per_worker': must be an integer, got string 'lots'",
        f"{path}: worker 'a': key 'max_retries': must be an integer, got boolean true",
        f"{path}: worker 'b': key 'fn': cannot import 'tests.core.broken_worker_module:run':"
        " importing 'tests.core.broken_worker_module' raised RuntimeError: database URL not set",
        f"{path}: worker 'b': key 'priority': must be one of low, normal, high, critical;"
        " got string 'urgent'",
        f"{path}: worker 'c': key 'depends_on': dependency cycle c -> d -> c",
    )


# --- import_function -----------------------------------------------------------------


def test_import_function_returns_function() -> None:
    """import_function returns the function a `module:function` ref names."""
    assert import_function("tests.core.sample_workers:sync_ok") is sample_workers.sync_ok


def test_import_function_dotted_attribute() -> None:
    """import_function follows a dotted path after the colon."""
    assert import_function("pathlib:Path.cwd") == pathlib.Path.cwd


def test_import_function_error_is_value_error() -> None:
    """import_function raises ValueError with a message naming the missing module."""
    with pytest.raises(ValueError, match="no module named 'no_such_package'"):
        import_function("no_such_package.mod:fn")


# --- [cluster] -------------------------------------------------------------------------


def test_cluster_table_is_read(tmp_path: pathlib.Path) -> None:
    """`[cluster]` gives the node's name, capacity, lease and heartbeat."""
    path = write_config(tmp_path, """
        [cluster]
        node_name = "n1"
        capacity = 2
        lease_seconds = 3
        heartbeat_seconds = 0.5
    """)
    cluster = load_config(path).cluster
    assert (cluster.node_name, cluster.capacity, cluster.lease_seconds,
            cluster.heartbeat_seconds) == ("n1", 2, 3.0, 0.5)


def test_cluster_table_defaults(tmp_path: pathlib.Path) -> None:
    """Without `[cluster]`: a 30 s lease, the heartbeat a third of it, name and capacity
    left to the node."""
    cluster = load_config(write_config(tmp_path, "")).cluster
    assert (cluster.node_name, cluster.capacity, cluster.lease_seconds,
            cluster.heartbeat_seconds) == (None, None, 30.0, None)


def test_cluster_table_problems(tmp_path: pathlib.Path) -> None:
    """Every wrong `[cluster]` key is reported at once, a heartbeat not shorter than the
    lease and a name no one could read included."""
    path = tmp_path / "jobdeck.toml"
    problems = problems_of(tmp_path, """
        [cluster]
        node_name = "a\\u0007b"
        capacity = 0
        lease_seconds = 2
        heartbeat_seconds = 2
        lease_second = 1
    """)
    assert problems == (
        f"{path}: [cluster]: key 'lease_second': unknown key (did you mean 'lease_seconds'?)",
        f"{path}: [cluster]: key 'node_name': must be 1 to 100 printable characters,"
        " got 'a\\x07b'",
        f"{path}: [cluster]: key 'capacity': must be an integer from 1 to 1000000; got 0",
        f"{path}: [cluster]: key 'heartbeat_seconds': must be shorter than"
        " 'lease_seconds' (2.0); got 2.0",
    )
