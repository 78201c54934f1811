"""Every number a config or the Python API accepts is one the orchestrator runs with."""

from __future__ import annotations

import math
import pathlib
import random
import textwrap
from typing import Any

import attrs
import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobdeck import Orchestrator
from jobdeck._cli import main
from jobdeck._config import JobdeckConfig, load_config, parse_config
from jobdeck._errors import ConfigError
from jobdeck._spec import OrchestratorConfig, WorkerSpec

from .conftest import virtual_wall_clock

SLOW_FAILURE = "tests.core.sample_workers:fails_slowly"
SECONDS = "from 0.001 to 315360000 seconds (ten years)"
COUNT = "an integer from {least} to 1000000"

#: key -> (the allowed range as messages say it, a mode in which the key matters)
WORKER_SECONDS = {
    "interval_seconds": (SECONDS, "scheduled"),
    "timeout_seconds": (f"0 or {SECONDS}", "continuous"),
    "retry_backoff_seconds": (f"0 or {SECONDS}", "scheduled"),
    "retry_backoff_max_seconds": (f"0 or {SECONDS}", "scheduled"),
    "circuit_cooldown_seconds": (f"{SECONDS}, or inf (never)", "scheduled"),
    "jitter_seconds": (f"0 or {SECONDS}", "scheduled"),
    "stall_seconds": (SECONDS, "continuous"),
    "expected_seconds": (SECONDS, "scheduled"),
}
WORKER_COUNTS = {"max_retries": 0, "max_consecutive_failures": 1}
ORCHESTRATOR_SECONDS = {
    "shutdown_grace_seconds": f"0 or {SECONDS}",
    "stuck_after_seconds": SECONDS,
    "health_interval_seconds": SECONDS,
}
ORCHESTRATOR_COUNTS = {"max_concurrent_workers": 1, "history_per_worker": 1,
                       "log_lines_per_worker": 1}


def write_config(tmp_path: pathlib.Path, text: str) -> pathlib.Path:
    path = tmp_path / "jobdeck.toml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems_of(tmp_path: pathlib.Path, text: str) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as info:
        load_config(write_config(tmp_path, text))
    return info.value.problems


def worker_toml(key: str, literal: str, mode: str = "scheduled") -> str:
    return f'[workers.w]\nfn = "{SLOW_FAILURE}"\nmode = "{mode}"\n{key} = {literal}\n'


def test_every_numeric_key_is_covered_here() -> None:
    """The tables above name every number of WorkerSpec and OrchestratorConfig."""
    numeric = {
        field.name
        for cls in (WorkerSpec, OrchestratorConfig)
        for field in attrs.fields(attrs.resolve_types(cls))
        if field.type in (float, int, float | None)
    }
    covered = {*WORKER_SECONDS, *WORKER_COUNTS, *ORCHESTRATOR_SECONDS, *ORCHESTRATOR_COUNTS}
    assert numeric == covered


# --- what load reports ------------------------------------------------------------------


@pytest.mark.parametrize("key", sorted(WORKER_SECONDS))
def test_nan_worker_seconds_rejected_with_range(tmp_path: pathlib.Path, key: str) -> None:
    """`nan` for a worker's `*_seconds` key is reported with the key and its range."""
    allowed, mode = WORKER_SECONDS[key]
    problems = problems_of(tmp_path, worker_toml(key, "nan", mode))
    path = tmp_path / "jobdeck.toml"
    assert problems == (f"{path}: worker 'w': key {key!r}: must be {allowed}; got nan",)


@pytest.mark.parametrize("key", sorted(ORCHESTRATOR_SECONDS))
def test_nan_orchestrator_seconds_rejected_with_range(tmp_path: pathlib.Path, key: str) -> None:
    """`nan` for an `[orchestrator]` `*_seconds` key is reported with the key and its range."""
    problems = problems_of(tmp_path, f"[orchestrator]\n{key} = nan\n")
    path = tmp_path / "jobdeck.toml"
    allowed = ORCHESTRATOR_SECONDS[key]
    assert problems == (f"{path}: [orchestrator]: key {key!r}: must be {allowed}; got nan",)


@pytest.mark.parametrize("key", ["interval_seconds", "stall_seconds", "circuit_cooldown_seconds"])
def test_tiny_positive_interval_rejected(tmp_path: pathlib.Path, key: str) -> None:
    """A subnormal interval such as 1e-320 is below the range, not a start-up crash."""
    allowed, mode = WORKER_SECONDS[key]
    problems = problems_of(tmp_path, worker_toml(key, "1e-320", mode))
    path = tmp_path / "jobdeck.toml"
    assert problems == (f"{path}: worker 'w': key {key!r}: must be {allowed}; got 1e-320",)


@pytest.mark.parametrize("key", ["interval_seconds", "jitter_seconds", "timeout_seconds"])
def test_infinite_seconds_rejected_where_inf_does_not_mean_never(
    tmp_path: pathlib.Path, key: str
) -> None:
    """`inf` is not an interval, a jitter or a timeout (0 is how a timeout says none)."""
    allowed, mode = WORKER_SECONDS[key]
    problems = problems_of(tmp_path, worker_toml(key, "inf", mode))
    path = tmp_path / "jobdeck.toml"
    assert problems == (f"{path}: worker 'w': key {key!r}: must be {allowed}; got inf",)


def test_seconds_beyond_ten_years_rejected(tmp_path: pathlib.Path) -> None:
    """A duration above ten years is reported, an integer too big for a float included."""
    problems = problems_of(
        tmp_path,
        worker_toml("interval_seconds", "315360001")
        + "retry_backoff_max_seconds = 1" + "0" * 400 + "\n",
    )
    path = tmp_path / "jobdeck.toml"
    assert problems == (
        f"{path}: worker 'w': key 'interval_seconds': must be {SECONDS}; got 315360001.0",
        f"{path}: worker 'w': key 'retry_backoff_max_seconds': must be 0 or {SECONDS};"
        " got an integer of 401 digits",
    )


@pytest.mark.parametrize(
    ("table", "key", "least"),
    [("worker", key, least) for key, least in WORKER_COUNTS.items()]
    + [("orchestrator", key, least) for key, least in ORCHESTRATOR_COUNTS.items()],
)
def test_huge_counts_rejected(tmp_path: pathlib.Path, table: str, key: str, least: int) -> None:
    """A count beyond 1,000,000 (here 2**63) is reported with the key and its range."""
    if table == "worker":
        text, where = worker_toml(key, str(2**63)), "worker 'w'"
    else:
        text, where = f"[orchestrator]\n{key} = {2**63}\n", "[orchestrator]"
    problems = problems_of(tmp_path, text)
    path = tmp_path / "jobdeck.toml"
    allowed = COUNT.format(least=least)
    assert problems == (f"{path}: {where}: key {key!r}: must be {allowed}; got {2**63}",)


def test_sub_second_values_and_range_ends_load(tmp_path: pathlib.Path) -> None:
    """0.05 s intervals and timeouts, and both ends of every range, are accepted."""
    config = load_config(
        write_config(
            tmp_path,
            f"""
            [orchestrator]
            max_concurrent_workers = 1000000
            shutdown_grace_seconds = 315360000
            health_interval_seconds = 0.001

            [workers.fast]
            fn = "{SLOW_FAILURE}"
            interval_seconds = 0.05
            timeout_seconds = 0.05
            retry_backoff_seconds = 0
            max_retries = 1000000
            jitter_seconds = 0.001

            [workers.rare]
            fn = "{SLOW_FAILURE}"
            interval_seconds = 315360000
            circuit_cooldown_seconds = 315360000
            """,
        )
    )
    fast, rare = (r.spec for r in config.workers)
    assert (fast.interval_seconds, fast.timeout_seconds) == (0.05, 0.05)
    assert rare.circuit_cooldown_seconds == 315360000.0


def test_infinite_cooldown_means_never(tmp_path: pathlib.Path) -> None:
    """`circuit_cooldown_seconds = inf` is accepted and means what leaving it out means."""
    config = load_config(write_config(tmp_path, worker_toml("circuit_cooldown_seconds", "inf")))
    assert config.workers[0].spec.circuit_cooldown_seconds is None


# --- the Python API agrees ----------------------------------------------------------------


@pytest.mark.parametrize("key", sorted(WORKER_SECONDS))
def test_worker_spec_rejects_nan_naming_key_and_range(key: str) -> None:
    """`WorkerSpec(key=nan)` raises ValueError naming the key and its range."""
    allowed, mode = WORKER_SECONDS[key]
    with pytest.raises(ValueError) as info:
        WorkerSpec(name="w", mode=mode, **{key: math.nan})
    assert str(info.value) == f"{key!r} must be {allowed}; got nan"


@pytest.mark.parametrize("key", sorted(ORCHESTRATOR_SECONDS))
def test_orchestrator_config_rejects_nan(key: str) -> None:
    """`OrchestratorConfig(key=nan)` raises ValueError naming the key and its range."""
    with pytest.raises(ValueError) as info:
        OrchestratorConfig(**{key: math.nan})
    assert str(info.value) == f"{key!r} must be {ORCHESTRATOR_SECONDS[key]}; got nan"


def test_worker_spec_rejects_a_bool_count() -> None:
    """`True` is not a count in the Python API either."""
    with pytest.raises(TypeError, match="'max_retries' must be an integer, got True"):
        WorkerSpec(name="w", max_retries=True)


# --- --grace ------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["nan", "inf", "-1", "1e-320", "1e9"])
def test_grace_option_outside_the_range_is_a_usage_error(
    text: str, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--grace` takes what `shutdown_grace_seconds` takes: exit 2 naming the range."""
    with pytest.raises(SystemExit) as info:
        # Refused while parsing the options, before the (missing) config is read.
        main(["--no-ui", "--config", str(tmp_path / "missing.toml"), "--grace", text])
    assert info.value.code == 2
    assert f"argument --grace: must be 0 or {SECONDS}" in capsys.readouterr().err


# --- whatever the value, load reports it or the orchestrator runs with it -----------------

KEYS = [
    *(("worker", key, mode) for key, (_, mode) in WORKER_SECONDS.items()),
    *(("worker", key, mode) for key in WORKER_COUNTS for mode in ("scheduled", "continuous")),
    *(("orchestrator", key, "scheduled") for key in ORCHESTRATOR_SECONDS),
    *(("orchestrator", key, "scheduled") for key in ORCHESTRATOR_COUNTS),
]
NUMBERS = st.one_of(
    st.floats(),
    st.integers(),
    st.sampled_from([0, 0.001, 0.05, 315_360_000, 1_000_000, 2**63, 1e-320, math.inf]),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(where=st.sampled_from(KEYS), value=NUMBERS)
def test_any_number_is_reported_or_runs(where: tuple[str, str, str], value: float) -> None:
    """Any number for any key: a ConfigError, or a spec the orchestrator runs with.

    The Python API accepts exactly what load accepts.
    """
    try:
        config = parse_config(_config_data(*where, value))
    except ConfigError:
        with pytest.raises((TypeError, ValueError)):
            _api_object(*where, value)
        return
    _api_object(*where, value)
    trio.run(_run_briefly, config, clock=trio.testing.MockClock(autojump_threshold=0))


def _ends(key: str) -> list[float]:
    if key in WORKER_COUNTS or key in ORCHESTRATOR_COUNTS:
        return [WORKER_COUNTS.get(key, ORCHESTRATOR_COUNTS.get(key, 1)), 1_000_000]
    return [0.001, 0.05, 315_360_000.0]


@pytest.mark.parametrize(
    ("where", "value"), [(where, value) for where in KEYS for value in _ends(where[1])]
)
def test_range_ends_run(where: tuple[str, str, str], value: float) -> None:
    """Both ends of every range (and 0.05 s) load and run through failures and a stop."""
    config = parse_config(_config_data(*where, value))
    trio.run(_run_briefly, config, clock=trio.testing.MockClock(autojump_threshold=0))


def _config_data(table: str, key: str, mode: str, value: float) -> dict[str, Any]:
    """A config of one slowly failing worker, with `key = value` where it belongs."""
    worker: dict[str, Any] = {"fn": SLOW_FAILURE, "mode": mode}
    orchestrator: dict[str, Any] = {}
    (worker if table == "worker" else orchestrator)[key] = value
    return {"orchestrator": orchestrator, "workers": {"w": worker}}


def _api_object(table: str, key: str, mode: str, value: float) -> object:
    """The same value given to the Python API."""
    if table == "worker":
        return WorkerSpec(name="w", mode=mode, **{key: value})
    return OrchestratorConfig(**{key: value})


async def _run_briefly(config: JobdeckConfig) -> None:
    """Run for a few virtual seconds through failures, retries and a graceful stop."""
    orch = Orchestrator.from_config(config, now=virtual_wall_clock, rng=random.Random(1))
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await nursery.start(orch.run)
            await orch.trigger("w")
            for _ in range(6):
                await trio.sleep(0.5)
                orch.snapshot()
            orch.stop()  # the configured grace
            await orch.wait_stopped()
