"""Property test: random configs and random triggers never break the invariants."""

from __future__ import annotations

import itertools
import random
from collections import defaultdict

import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobdeck import (
    MemoryStore,
    Orchestrator,
    OrchestratorConfig,
    RunStatus,
    TriggerAccepted,
)

from .conftest import virtual_wall_clock

MODES = ("scheduled", "triggered")
PRIORITIES = ("low", "normal", "high", "critical")


@st.composite
def worker_specs(draw: st.DrawFn) -> list[dict]:
    count = draw(st.integers(2, 6))
    specs = []
    for i in range(count):
        earlier = [f"w{j}" for j in range(i)]
        depends_on = (
            draw(st.lists(st.sampled_from(earlier), unique=True, max_size=2)) if earlier else []
        )
        blockable = [n for n in earlier if n not in depends_on]
        blocks = (
            draw(st.lists(st.sampled_from(blockable), unique=True, max_size=2)) if blockable else []
        )
        specs.append(
            {
                "name": f"w{i}",
                "mode": draw(st.sampled_from(MODES)),
                "interval_seconds": draw(st.sampled_from([3.0, 5.0, 7.5, 20.0])),
                "priority": draw(st.sampled_from(PRIORITIES)),
                "max_retries": draw(st.integers(0, 2)),
                "retry_backoff_seconds": draw(st.sampled_from([0.0, 0.5, 2.0])),
                "timeout_seconds": draw(st.sampled_from([1.0, 4.0, 60.0])),
                "max_consecutive_failures": draw(st.integers(1, 4)),
                "circuit_cooldown_seconds": draw(st.sampled_from([None, 5.0])),
                "depends_on": depends_on,
                "blocks": blocks,
                "duration": draw(st.sampled_from([0.0, 0.5, 2.0, 6.0])),
                "fail_rate": draw(st.sampled_from([0.0, 0.3, 1.0])),
            }
        )
    return specs


triggers = st.lists(
    st.tuples(
        st.floats(0, 40, allow_nan=False),
        st.integers(0, 5),
        st.sampled_from(["run", "enable", "disable", "pause", "resume"]),
    ),
    max_size=25,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs=worker_specs(), actions=triggers, slots=st.integers(2, 4), seed=st.integers(0, 1000))
def test_random_configs_keep_the_invariants(specs, actions, slots, seed):
    """No self-overlap, no blocked pair together, slots respected, no trigger lost."""
    trio.run(
        _scenario, specs, actions, slots, seed, clock=trio.testing.MockClock(autojump_threshold=0)
    )


async def _scenario(specs: list[dict], actions, slots: int, seed: int) -> None:
    store = MemoryStore(history_per_worker=10_000)
    orch = Orchestrator(
        OrchestratorConfig(max_concurrent_workers=slots, shutdown_grace_seconds=3.0),
        store=store,
        now=virtual_wall_clock,
        rng=random.Random(seed),
    )
    rng = random.Random(seed)
    intervals: dict[str, list[tuple[float, float]]] = defaultdict(list)
    running: set[str] = set()
    peak = 0

    def make(spec: dict):
        async def work(ctx) -> None:
            nonlocal peak
            assert ctx.worker not in running, f"{ctx.worker} overlaps itself"
            running.add(ctx.worker)
            peak = max(peak, len(running))
            start = trio.current_time()
            try:
                await trio.sleep(spec["duration"])
                if rng.random() < spec["fail_rate"]:
                    raise RuntimeError("random failure")
            finally:
                running.discard(ctx.worker)
                intervals[ctx.worker].append((start, trio.current_time()))

        return work

    for spec in specs:
        kwargs = {k: v for k, v in spec.items() if k not in ("name", "duration", "fail_rate")}
        orch.register(spec["name"], make(spec), **kwargs)

    accepted: list[str] = []
    names = [s["name"] for s in specs]
    async with trio.open_nursery() as nursery:
        with orch.subscribe(max_buffer=1_000_000) as events:
            await nursery.start(orch.run)
            for at, index, action in sorted(actions):
                await trio.sleep_until(at)
                name = names[index % len(names)]
                if action == "run":
                    await orch.trigger(name, {"at": at})
                elif action == "enable":
                    await orch.enable(name)
                elif action == "disable":
                    await orch.disable(name)
                elif action == "pause":
                    orch.pause()
                else:
                    orch.resume()
            await trio.sleep_until(60)
            orch.stop()
            async for event in events:
                if isinstance(event, TriggerAccepted):
                    accepted.append(event.trigger_id)

    assert peak <= slots
    for name, spans in intervals.items():
        spans.sort()
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert start >= end, f"{name} overlapped itself"
    pairs = {(a["name"], b) for a in specs for b in a["blocks"]}
    for a, b in pairs:
        for s1, e1 in intervals[a]:
            for s2, e2 in intervals[b]:
                assert e1 <= s2 or e2 <= s1, f"{a} and {b} ran together"
    final = await store.open()
    pending = {t.id for t in final.pending}
    finished = {
        r.trigger.id
        for r in await store.runs(None, limit=1_000_000)
        if r.status in (RunStatus.SUCCEEDED, RunStatus.FAILED)
    }
    for trigger_id in accepted:
        assert trigger_id in pending or trigger_id in finished, f"trigger {trigger_id} lost"
    assert not final.unfinished_runs
