"""tui: the dashboard on N workers with R runs/s, headless (`App.run_test`).

The core runs in trio guest mode on Textual's asyncio loop, as in production. N - B
scheduled workers (B = 100 triggered "burst" workers) with `interval = (N - B) / R`
and as much jitter make R runs/s of 20 ms each, spread out. Then:

* keypress-to-screen: a key is sent the way the terminal driver sends it, and timed
  until the first frame the screen composes while the widget shows the change: `j`
  (cursor down), `s` (next sort order: the table re-sorts) and `p` (pause / resume:
  a round trip through the core, shown in the status bar). Headless Textual composes
  frames but writes nothing; the benchmark also encodes each frame for the terminal
  (`render_segments`), so only the write itself is missing.
* core throughput: `jobs` no-op triggers over the burst workers until all have
  succeeded, while the dashboard runs, over the same burst in a plain `trio.run` with
  the same workers and load (`headless`, measured in the same process).
* with `--attach`, the same keys on `jobdeck attach`: the core runs headless with its
  HTTP API in a thread of its own (its own `trio.run`), the dashboard follows it over
  loopback (`/events`, `/status`, the POST endpoints); its figures sit beside the local
  ones (`jobdeck-attach`, with `added_p95_ms` over the local p95).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import inspect
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import trio

from jobdeck import MemoryStore, Orchestrator, OrchestratorConfig

from ._harness import Clocks, Measurement, Result, Skip, Target, percentile, ratio
from ._jobdeck import noop, running, trigger_burst

NAME = "tui"
HELP = "dashboard keypress-to-screen latency and core throughput vs headless"
DEFAULT_REPEAT = 1
BURST_WORKERS = 100
RUN_SECONDS = 0.02
SCREEN = (160, 48)
KEYS = ("j", "s", "p")
#: Seconds a key may take to show before the benchmark gives up.
PRESS_TIMEOUT = 30.0
NOT_BUILT = "skipped: dashboard not built (tui/app.py is missing)"

TARGETS = (
    Target(NAME, "jobdeck", "key_p95_ms", "<=", 100.0,
           "1,000 workers, 100 runs/s: keypress-to-screen <= 100 ms (p95)",
           {"workers": 1000, "rate": 100.0}),
    Target(NAME, "jobdeck", "throughput_ratio_vs_headless", ">=", 0.7,
           "1,000 workers, 100 runs/s: core throughput with the TUI >= 0.7x headless",
           {"workers": 1000, "rate": 100.0}),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=int, help="workers shown (default 1,000)")
    parser.add_argument("--rate", type=float, help="scheduled runs per second (default 100)")
    parser.add_argument("--presses", type=int, help="presses of each key (default 10)")
    parser.add_argument("--jobs", type=int, help="triggers in the throughput burst "
                        "(default 3,000)")
    parser.add_argument("--attach", action="store_true",
                        help="also measure the keys over `jobdeck attach` (loopback)")


async def _short_run(ctx: Any) -> None:
    await trio.sleep(RUN_SECONDS)


def build(workers: int, rate: float) -> tuple[Orchestrator, list[str]]:
    """The orchestrator under test and the names of its burst workers."""
    burst = max(1, min(BURST_WORKERS, workers // 10))
    load = workers - burst
    interval = max(load / rate, 0.01)
    orch = Orchestrator(OrchestratorConfig(max_concurrent_workers=burst + 50),
                        store=MemoryStore())
    for i in range(load):
        orch.register(f"load-{i:05d}", _short_run, interval_seconds=interval,
                      jitter_seconds=interval, max_retries=0)
    names = [f"burst-{i:03d}" for i in range(burst)]
    for name in names:
        orch.register(name, noop, mode="triggered", max_retries=0)
    return orch, names


async def headless(workers: int, rate: float, jobs: int, warmup: float) -> float:
    """Seconds for the burst in a plain `trio.run`, under the same load."""
    orch, names = build(workers, rate)
    async with running(orch):
        await trio.sleep(warmup)
        clocks = await trigger_burst(orch, names, jobs, BURST_WORKERS)
    return clocks.wall


async def _burst(orch: Orchestrator, names: list[str], jobs: int) -> Clocks:
    return await trigger_burst(orch, names, jobs, BURST_WORKERS)


def _timed_app_class() -> type:
    """DeckApp, noting when each frame is composed (and encoding it, as for a terminal)."""
    from jobdeck.tui.app import DeckApp

    class TimedDeck(DeckApp):
        # A relative CSS_PATH is read beside the class's module: keep the app's own.
        CSS_PATH = str(Path(inspect.getfile(DeckApp)).with_name(str(DeckApp.CSS_PATH)))
        frames = 0
        #: While set: the change the next frames are checked for, and when it showed.
        expect: Callable[[], bool] | None = None
        shown: asyncio.Event | None = None

        def _display(self, screen: Any, renderable: Any) -> None:
            super()._display(screen, renderable)
            if renderable is None or self._batch_count:
                return
            encode = getattr(renderable, "render_segments", None)
            if encode is not None:
                encode(self.console)
            self.frames += 1
            if self.expect is not None and self.shown is not None and self.expect():
                self.expect = None
                self.shown.set()

    return TimedDeck


def _change_of(app: Any, key: str) -> Callable[[], bool]:
    """What pressing `key` now must change on screen, as a check."""
    table = app.deck.worker_table
    if key == "j":
        row = table.cursor_row
        return lambda: table.cursor_row == row + 1
    if key == "s":
        order = table.sort_by
        return lambda: table.sort_by != order
    if key == "p":
        state = app.snapshot.state
        return lambda: app.snapshot is not None and app.snapshot.state != state
    raise ValueError(key)


async def _press(app: Any, key: str) -> float:
    """Seconds from sending `key` to the first frame that shows its effect."""
    from textual import events

    app.expect = _change_of(app, key)
    app.shown = asyncio.Event()
    event = events.Key(key, key)
    event.set_sender(app)
    started = time.perf_counter()
    app._driver.send_message(event)
    await asyncio.wait_for(app.shown.wait(), PRESS_TIMEOUT)
    return time.perf_counter() - started


async def _press_keys(app: Any, presses: int) -> dict[str, list[float]]:
    """Each key `presses` times, landing at random points of the refresh cycle."""
    rng = random.Random(6)
    latencies: dict[str, list[float]] = {key: [] for key in KEYS}
    for _ in range(presses):
        for key in KEYS:
            await asyncio.sleep(rng.uniform(0.05, 0.3))
            latencies[key].append(await _press(app, key))
    return latencies


def _key_figures(latencies: dict[str, list[float]]) -> dict[str, Any]:
    """Keypress-to-screen percentiles, in ms: over every key, and each key's median."""
    every = sorted(x for values in latencies.values() for x in values)
    figures: dict[str, Any] = {
        "key_p50_ms": percentile(every, 50) * 1e3,
        "key_p95_ms": percentile(every, 95) * 1e3,
        "key_max_ms": every[-1] * 1e3,
    }
    for key, values in latencies.items():
        figures[f"key_{key}_p50_ms"] = percentile(sorted(values), 50) * 1e3
    return figures


async def dashboard(
    workers: int, rate: float, jobs: int, presses: int, warmup: float
) -> dict[str, Any]:
    orch, names = build(workers, rate)
    app = _timed_app_class()(orch, title="bench")
    async with app.run_test(size=SCREEN):
        try:
            await app.bridge.wait_ready()
            await asyncio.sleep(warmup)
            frames_before, wall_before = app.frames, time.perf_counter()
            latencies = await _press_keys(app, presses)
            fps = (app.frames - frames_before) / (time.perf_counter() - wall_before)
            if app.snapshot is not None and app.snapshot.state == "paused":
                await _press(app, "p")
            clocks = await app.bridge.read(_burst, orch, names, jobs)
            costs = sorted(cost.seconds for cost in app.refresh_costs)
        finally:
            # Whatever happened, the guest run must end before the loop does: an
            # abandoned one breaks every later trio.run on this thread.
            orch.stop(0)
            orch.stop(0)
            await asyncio.wait_for(app.bridge.wait_done(), PRESS_TIMEOUT)
    figures = _key_figures(latencies)
    figures["refresh_p50_ms"] = percentile(costs, 50) * 1e3
    figures["refresh_max_ms"] = (costs[-1] if costs else 0.0) * 1e3
    figures["frames_per_s"] = fps
    figures["burst_s"] = clocks.wall
    return figures


def _serve_node(workers: int, rate: float, started: Any, stop: Any) -> None:
    """A headless node with its API, in this thread's own `trio.run`, until `stop` is set."""
    from jobdeck._http_server import ApiServer

    async def main() -> None:
        orch, _ = build(workers, rate)
        server = ApiServer(orch, "127.0.0.1:0", token="bench", graceful_timeout=1)
        async with trio.open_nursery() as nursery:
            orch.http_address = await nursery.start(server.serve)
            await nursery.start(orch.run)
            started.put(orch.http_address)
            await trio.to_thread.run_sync(stop.wait)
            orch.stop(0)
            await orch.wait_stopped()
            server.close()

    trio.run(main)


async def attached(workers: int, rate: float, presses: int, warmup: float) -> dict[str, Any]:
    """Keypress-to-screen on `jobdeck attach` to a node in another thread, over loopback."""
    import queue
    import threading

    from jobdeck.tui._remote import (
        ATTACHED_REFRESH_INTERVAL,
        HttpClient,
        RemoteBridge,
        RemoteOrchestrator,
    )

    started: queue.Queue[str] = queue.Queue()
    stop = threading.Event()
    node = threading.Thread(target=_serve_node, args=(workers, rate, started, stop))
    node.start()
    try:
        address = await asyncio.to_thread(started.get, True, PRESS_TIMEOUT)
        remote = RemoteOrchestrator(HttpClient(f"http://{address}", "bench"))
        app = _timed_app_class()(remote, title="bench", bridge=RemoteBridge(remote),
                                 refresh_interval=ATTACHED_REFRESH_INTERVAL)
        async with app.run_test(size=SCREEN):
            try:
                await app.bridge.wait_ready()
                await asyncio.sleep(warmup)
                latencies = await _press_keys(app, presses)
            finally:
                remote.stop()
                await asyncio.wait_for(app.bridge.wait_done(), PRESS_TIMEOUT)
    finally:
        stop.set()
        await asyncio.to_thread(node.join, PRESS_TIMEOUT)
    return _key_figures(latencies)


def measure(args: argparse.Namespace) -> Sequence[Result]:
    if importlib.util.find_spec("jobdeck.tui.app") is None:
        return [Skip(NAME, "jobdeck", NOT_BUILT)]
    quick = args.quick
    workers = args.workers or (60 if quick else 1000)
    rate = args.rate or (20.0 if quick else 100.0)
    jobs = args.jobs or (100 if quick else 3000)
    presses = args.presses or (1 if quick else 10)
    warmup = 0.3 if quick else 2.0
    base = trio.run(headless, workers, rate, jobs, warmup)
    mine = asyncio.run(dashboard(workers, rate, jobs, presses, warmup))
    mine["jobs_per_s"] = jobs / mine.pop("burst_s")
    headless_rate = jobs / base
    mine["throughput_ratio_vs_headless"] = ratio(mine["jobs_per_s"], headless_rate)
    params = {"workers": workers, "rate": rate, "jobs": jobs}
    results: list[Result] = [
        Measurement(NAME, "headless", params, {"jobs_per_s": headless_rate}),
        Measurement(NAME, "jobdeck", {**params, "presses": presses}, mine),
    ]
    if getattr(args, "attach", False):
        remote = asyncio.run(attached(workers, rate, presses, warmup))
        remote["added_p95_ms"] = remote["key_p95_ms"] - mine["key_p95_ms"]
        results.append(Measurement(NAME, "jobdeck-attach", {**params, "presses": presses},
                                   remote))
    return results
