"""The guest-mode bridge on its own: start, reads, control, the end of the guest run."""

from __future__ import annotations

import asyncio

import pytest
import trio
from textual.app import App

from jobdeck import (
    MemoryStore,
    Orchestrator,
    OrchestratorConfig,
    OrchestratorStopped,
    RunSucceeded,
)
from jobdeck.tui import _bridge
from jobdeck.tui._bridge import BridgeState, CoreBridge, CoreNotRunning

from . import workers


class Host(App[None]):
    """A bare Textual app that hosts a bridge and keeps what it is told."""

    def __init__(self, bridge: CoreBridge) -> None:
        super().__init__()
        self.bridge = bridge
        self.events: list[object] = []
        self.finished: list[object] = []

    def on_mount(self) -> None:
        self.bridge.start(self)

    def on_core_bridge_events_arrived(self, message: CoreBridge.EventsArrived) -> None:
        self.events.extend(self.bridge.take_events())

    def on_core_bridge_finished(self, message: CoreBridge.Finished) -> None:
        self.events.extend(self.bridge.take_events())
        self.finished.append(message.result)


def orchestrator() -> Orchestrator:
    orch = Orchestrator(OrchestratorConfig(), store=MemoryStore())
    orch.register("a", workers.ok, mode="triggered")
    return orch


def run(scenario) -> Host:  # type: ignore[no-untyped-def]
    host = Host(CoreBridge(orchestrator()))

    async def main() -> None:
        async with host.run_test() as pilot:
            await host.bridge.wait_ready()
            try:
                await scenario(host, pilot)
            finally:
                host.bridge.orch.stop()
                await asyncio.wait_for(host.bridge.wait_done(), 10)
                await pilot.pause()

    asyncio.run(main())
    return host


def test_reads_run_in_trio_and_come_back_as_results() -> None:
    """`read()` awaits a core coroutine in the guest run and resolves with its value."""

    async def scenario(host: Host, pilot: object) -> None:
        bridge = host.bridge
        assert bridge.state is BridgeState.RUNNING
        assert bridge.control("trigger", "a")
        await bridge.settle()
        runs = await bridge.read(bridge.orch.history, "a", 5)
        assert [run.status.value for run in runs] == ["succeeded"]

    run(scenario)


def test_a_failing_read_raises_its_error_to_the_asker() -> None:
    """A read that raises hands the same exception to whoever awaits it."""

    async def scenario(host: Host, pilot: object) -> None:
        with pytest.raises(LookupError):
            await host.bridge.read(host.bridge.orch.history, "no-such-worker", 5)

    run(scenario)


def test_events_are_handed_over_and_the_end_is_reported() -> None:
    """Core events reach the app in order, the last announced; `Finished` has the outcome."""

    async def scenario(host: Host, pilot: object) -> None:
        host.bridge.control("trigger", "a")
        await host.bridge.settle()

    host = run(scenario)
    names = [type(event).__name__ for event in host.events]
    assert "RunSucceeded" in names
    assert isinstance(host.events[-1], OrchestratorStopped)
    assert host.bridge.finished and not host.bridge.running
    assert len(host.finished) == 1 and host.finished[0].unwrap() is None  # type: ignore[attr-defined]
    assert host.bridge not in CoreBridge.live


def test_after_the_end_reads_fail_and_control_is_refused() -> None:
    """Once the guest run has ended, reads fail with CoreNotRunning and control says no."""
    host = run(lambda host, pilot: asyncio.sleep(0))

    async def after() -> None:
        with pytest.raises(CoreNotRunning):
            await host.bridge.read(host.bridge.orch.dead_letters)

    asyncio.run(after())
    assert host.bridge.control("trigger", "a") is False
    with pytest.raises(RuntimeError):
        trio.lowlevel.current_trio_token()


def test_a_quiet_core_hands_events_over_when_asked() -> None:
    """Events wait in the bridge, in order, until `take_events()`; nothing is announced."""

    async def scenario(host: Host, pilot: object) -> None:
        bridge = host.bridge
        bridge.take_events()
        bridge.control("trigger", "a")
        await bridge.settle()
        assert bridge.events_waiting
        names = [type(event).__name__ for event in bridge.take_events()]
        assert names.index("RunStarted") < names.index("RunSucceeded")
        assert not bridge.events_waiting and host.events == []

    run(scenario)


def test_a_large_batch_of_events_is_announced_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past `ANNOUNCE_AT` waiting events the app is told to take them, not left to its tick."""
    monkeypatch.setattr(_bridge, "ANNOUNCE_AT", 10)

    async def scenario(host: Host, pilot: object) -> None:
        for _ in range(5):
            host.bridge.control("trigger", "a")
        await host.bridge.settle()
        await pilot.pause()  # type: ignore[attr-defined]
        # The host has no refresh tick: whatever it holds was announced. (Events that
        # came after the last announcement wait in the inbox, fewer than ANNOUNCE_AT.)
        assert len(host.events) >= 10
        assert any(isinstance(e, RunSucceeded) for e in host.events)

    run(scenario)
