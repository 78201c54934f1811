"""Reload: a config applied to a running orchestrator, in virtual time."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from jobdeck import (
    ConfigError,
    ConfigReloaded,
    ConfigReloadFailed,
    JobContext,
    JobdeckConfig,
    LocalCoordinator,
    MemoryStore,
    NotRunning,
    OrchestratorConfig,
    WorkerRegistration,
    WorkerSpec,
    load_config,
)
from tests.core.conftest import make_orchestrator, running

Record = list[tuple[str, float, Any]]
WorkerFn = Callable[[JobContext], Awaitable[None]]


def recorder(record: Record, seconds: float = 0.0) -> WorkerFn:
    """A worker that records (name, start time, params), then works `seconds`."""

    async def work(ctx: JobContext) -> None:
        record.append((ctx.worker, trio.current_time(), dict(ctx.params)))
        await trio.sleep(seconds)

    return work


def config(
    workers: dict[str, tuple[WorkerFn, dict[str, Any]]], **orchestrator: Any
) -> JobdeckConfig:
    """A loaded config of `name: (fn, spec keys)` workers, in that order."""
    return JobdeckConfig(
        path=None,
        orchestrator=OrchestratorConfig(**orchestrator),
        workers=tuple(
            WorkerRegistration(
                spec=WorkerSpec(name=name, **spec), fn=fn,
                fn_ref=f"{fn.__module__}:{fn.__qualname__}",  # as `register` names it
            )
            for name, (fn, spec) in workers.items()
        ),
    )


def started(record: Record, name: str) -> list[float]:
    return [t for worker, t, _ in record if worker == name]


async def test_added_worker_starts(autojump_clock: trio.testing.MockClock) -> None:
    """A worker the new config adds is registered and runs on its schedule."""
    record: Record = []
    fetch = recorder(record)
    orch = make_orchestrator()
    orch.register("fetch", fetch, interval_seconds=100)
    async with running(orch):
        await trio.sleep_until(5)
        result = orch.reload(config({
            "fetch": (fetch, {"interval_seconds": 100}),
            "report": (recorder(record), {"interval_seconds": 10}),
        }))
        await trio.sleep_until(26)
    assert result.added == ("report",)
    assert (result.removed, result.changed) == ((), ())
    assert started(record, "report") == [5.0, 15.0, 25.0]
    assert orch.worker_names == ["fetch", "report"]


async def test_removed_idle_worker_goes_and_keeps_its_triggers(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A removed idle worker goes at once; its pending triggers stay stored and come back
    with it."""
    record: Record = []
    store = MemoryStore()
    orch = make_orchestrator(store=store)
    gate = recorder(record, 100)
    report = recorder(record)
    orch.register("gate", gate, mode="triggered", blocks=["report"])
    orch.register("report", report, mode="triggered")
    async with running(orch):
        await orch.trigger("gate")
        await trio.sleep(1)
        held = await orch.trigger("report")  # blocked by gate: pending
        orch.reload(config({"gate": (gate, {"mode": "triggered"})}))
        assert orch.worker_names == ["gate"]
        assert orch.snapshot().pending == 0
        stored = await store.open()
        assert [t.id for t in stored.pending if t.worker == "report"] == [held]
        await trio.sleep_until(200)
        assert started(record, "report") == []
        orch.reload(config({
            "gate": (gate, {"mode": "triggered"}),
            "report": (report, {"mode": "triggered"}),
        }))
        await trio.sleep_until(201)
    assert started(record, "report") == [200.0]


async def test_removed_running_worker_finishes_its_run_then_goes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A removed worker with a run in flight finishes it, starts no other, then goes."""
    record: Record = []
    slow = recorder(record, 10)
    orch = make_orchestrator()
    orch.register("slow", slow, mode="triggered")
    orch.register("other", recorder(record), mode="triggered")
    async with running(orch):
        await orch.trigger("slow")
        await orch.trigger("slow")  # queued behind the run in flight
        await trio.sleep(1)
        result = orch.reload(config({"other": (recorder(record), {"mode": "triggered"})}))
        assert result.removed == ("slow",)
        assert orch.snapshot().worker("slow").state == "running"
        await trio.sleep_until(10.5)
        assert "slow" not in orch.worker_names
        history = await orch.history(None)
        await trio.sleep_until(50)
    assert started(record, "slow") == [0.0]
    assert [(r.worker, r.status.value) for r in history] == [("slow", "succeeded")]


async def test_changed_worker_takes_effect_at_its_next_run(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A run in flight keeps its spec (its timeout here); the next run has the new one."""
    record: Record = []
    work = recorder(record, 5)
    orch = make_orchestrator()
    orch.register("job", work, mode="triggered", timeout_seconds=60, max_retries=0,
                  params={"v": 1})
    async with running(orch):
        await orch.trigger("job")
        await trio.sleep(1)
        result = orch.reload(config({
            "job": (work, {"mode": "triggered", "timeout_seconds": 2, "max_retries": 0,
                           "params": {"v": 2}}),
        }))
        await trio.sleep_until(6)
        await orch.trigger("job")
        await trio.sleep_until(20)
        history = await orch.history("job")
    assert result.changed == ("job",)
    assert [params for _, _, params in record] == [{"v": 1}, {"v": 2}]
    assert [r.status.value for r in reversed(history)] == ["succeeded", "failed"]


async def test_schedule_change_sets_the_schedule_again(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A new interval counts from the last start: due at once if that is past."""
    record: Record = []
    tick = recorder(record)
    orch = make_orchestrator()
    orch.register("tick", tick, interval_seconds=100)
    async with running(orch):
        await trio.sleep_until(30)
        orch.reload(config({"tick": (tick, {"interval_seconds": 20})}))
        await trio.sleep_until(61)
    assert started(record, "tick") == [0.0, 30.0, 40.0, 60.0]


async def test_orchestrator_keys_apply_and_store_needs_a_restart(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """More slots apply at once; a new store is reported as needing a restart."""
    record: Record = []
    a, b = recorder(record, 10), recorder(record, 10)
    orch = make_orchestrator(max_concurrent_workers=1)
    orch.register("a", a, mode="triggered")
    orch.register("b", b, mode="triggered")
    async with running(orch):
        await orch.trigger("a")
        await orch.trigger("b")
        await trio.sleep(1)
        result = orch.reload(config(
            {"a": (a, {"mode": "triggered"}), "b": (b, {"mode": "triggered"})},
            max_concurrent_workers=2, shutdown_grace_seconds=3, store="elsewhere.db",
        ))
        await trio.sleep(1)
        snap = orch.snapshot()
    assert result.orchestrator == ("max_concurrent_workers", "shutdown_grace_seconds")
    assert result.restart_needed == ("store",)
    assert started(record, "b") == [1.0]
    assert (snap.running, snap.max_concurrent_workers) == (2, 2)
    assert orch.config.store is None


async def test_runtime_state_wins_over_the_file(autojump_clock: trio.testing.MockClock) -> None:
    """A worker disabled by an operator stays disabled across reloads, removal included."""
    record: Record = []
    job = recorder(record)
    orch = make_orchestrator()
    orch.register("job", job, mode="triggered")
    async with running(orch):
        await orch.disable("job")
        orch.reload(config({"job": (job, {"mode": "triggered", "priority": "high"})}))
        assert not orch.snapshot().worker("job").enabled
        orch.reload(config({}))
        orch.reload(config({"job": (job, {"mode": "triggered"})}))
        await orch.trigger("job")
        await trio.sleep(5)
        snap = orch.snapshot().worker("job")
    assert not snap.enabled
    assert (snap.pending, record) == (1, [])


async def test_new_dependency_chains(autojump_clock: trio.testing.MockClock) -> None:
    """Dependents are worked out again: an added triggered dependent runs after its
    dependency succeeds."""
    record: Record = []
    fetch = recorder(record, 1)
    orch = make_orchestrator()
    orch.register("fetch", fetch, mode="triggered")
    async with running(orch):
        orch.reload(config({
            "fetch": (fetch, {"mode": "triggered"}),
            "report": (recorder(record), {"mode": "triggered", "depends_on": ["fetch"]}),
        }))
        await orch.trigger("fetch")
        await trio.sleep(5)
    assert [(name, t) for name, t, _ in record] == [("fetch", 0.0), ("report", 1.0)]


async def test_new_blocks_apply(autojump_clock: trio.testing.MockClock) -> None:
    """Blocks are worked out again: two workers that now block each other never overlap."""
    record: Record = []
    a, b = recorder(record, 10), recorder(record, 10)
    orch = make_orchestrator()
    orch.register("a", a, mode="triggered")
    orch.register("b", b, mode="triggered")
    async with running(orch):
        orch.reload(config({
            "a": (a, {"mode": "triggered", "blocks": ["b"]}), "b": (b, {"mode": "triggered"}),
        }))
        await orch.trigger("a")
        await orch.trigger("b")
        await trio.sleep(30)
    assert [(name, t) for name, t, _ in record] == [("a", 0.0), ("b", 10.0)]


async def test_graph_problems_refuse_the_reload_whole(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A config whose workers refer to unknown names changes nothing and says why."""
    record: Record = []
    job = recorder(record)
    orch = make_orchestrator()
    orch.register("job", job, interval_seconds=10)
    with orch.subscribe() as events:
        async with running(orch):
            with pytest.raises(ConfigError) as caught:
                orch.reload(config({
                    "job": (job, {"interval_seconds": 1}),
                    "new": (job, {"depends_on": ["missing"]}),
                }, max_concurrent_workers=9))
            await trio.sleep_until(25)
            snap = orch.snapshot()
        queued = events.receive.statistics().current_buffer_used
        published = [events.receive.receive_nowait() for _ in range(queued)]
    assert list(caught.value.problems) == [
        "worker 'new': key 'depends_on': unknown worker 'missing'"
    ]
    assert [w.name for w in snap.workers] == ["job"]
    assert snap.max_concurrent_workers == 5
    assert started(record, "job") == [0.0, 10.0, 20.0]
    failed = [e for e in published if isinstance(e, ConfigReloadFailed)]
    assert [e.problems for e in failed] == [tuple(caught.value.problems)]
    assert not [e for e in published if isinstance(e, ConfigReloaded)]


async def test_config_reloaded_event_lists_the_changes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """`config_reloaded` names the workers added, removed and changed, and the keys."""
    job = recorder([])
    orch = make_orchestrator()
    orch.register("keep", job, mode="triggered")
    orch.register("change", job, mode="triggered")
    orch.register("drop", job, mode="triggered")
    with orch.subscribe() as events:
        async with running(orch):
            orch.reload(config({
                "keep": (job, {"mode": "triggered"}),
                "change": (job, {"mode": "triggered", "max_retries": 0}),
                "add": (job, {"mode": "triggered"}),
            }, log_lines_per_worker=10))
            async for event in events:
                if isinstance(event, ConfigReloaded):
                    break
    data = event.to_dict()
    assert data["event"] == "config_reloaded"
    assert (data["added"], data["removed"], data["changed"], data["orchestrator"]) == (
        ("add",), ("drop",), ("change",), ("log_lines_per_worker",)
    )


async def test_reload_before_start_is_refused() -> None:
    """Reload applies to a running orchestrator only."""
    orch = make_orchestrator()
    with pytest.raises(NotRunning):
        orch.reload(config({}))


async def test_reload_file_refuses_a_broken_file_with_the_messages_of_check(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    """`reload_file` reads the file again; one with errors is refused with check's
    messages, and the running set stays."""
    path = tmp_path / "jobs.toml"
    path.write_text(
        '[workers.a]\nfn = "tests.core.sample_workers:ok"\nmode = "triggered"\n'
    )
    orch = make_orchestrator()
    for registration in load_config(path).workers:
        orch.add_worker(registration.spec, registration.fn, fn_ref=registration.fn_ref)
    orch.config_path = path
    async with running(orch):
        path.write_text(
            '[workers.a]\nfn = "tests.core.sample_workers:ok"\nmode = "sometimes"\n'
            '[workers.b]\nfn = "tests.core.sample_workers:nope"\n'
        )
        with pytest.raises(ConfigError) as caught:
            orch.reload_file()
        with pytest.raises(ConfigError) as checked:
            load_config(path)
        assert caught.value.problems == checked.value.problems
        assert orch.worker_names == ["a"]
        path.write_text(
            '[workers.a]\nfn = "tests.core.sample_workers:ok"\nmode = "triggered"\n'
            '[workers.b]\nfn = "tests.core.sample_workers:ok"\nmode = "triggered"\n'
        )
        result = orch.reload_file()
    assert result.added == ("b",)
    assert orch.worker_names == ["a", "b"]


async def test_reload_is_refused_in_cluster_mode(autojump_clock: trio.testing.MockClock) -> None:
    """A node of a cluster refuses a reload (with a reason) rather than half-applying it."""
    from jobdeck._dispatcher import Dispatcher

    class ClusterStore(MemoryStore):
        def cluster(self, engine: Any) -> tuple[LocalCoordinator, Dispatcher]:
            coordinator = LocalCoordinator(engine)
            return coordinator, Dispatcher(engine, coordinator)

    job = recorder([])
    orch = make_orchestrator(store=ClusterStore())
    orch.register("job", job, mode="triggered")
    async with running(orch):
        with pytest.raises(ConfigError, match="cluster mode"):
            orch.reload(config({"job": (job, {"mode": "triggered"}), "new": (job, {})}))
        assert orch.worker_names == ["job"]


async def test_changed_max_retries_applies_to_the_next_run(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A run started after a reload that changed `max_retries` gets the new number of
    attempts (the state a worker's runs start in is made from its spec, not kept)."""
    attempts: list[int] = []

    async def flaky(ctx: JobContext) -> None:
        attempts.append(ctx.attempt)
        raise RuntimeError("always")

    orch = make_orchestrator()
    orch.register("job", flaky, mode="triggered", max_retries=0, retry_backoff_seconds=1)
    async with running(orch):
        await orch.trigger("job")
        await trio.sleep(5)
        assert attempts == [1]
        orch.reload(config({
            "job": (flaky, {"mode": "triggered", "max_retries": 2,
                            "retry_backoff_seconds": 1}),
        }))
        await orch.trigger("job")
        await trio.sleep(30)
    assert attempts == [1, 1, 2, 3]
