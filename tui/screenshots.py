"""Draw the README's screenshots with the dashboard itself: `python -m jobdeck.tui.screenshots DIR`.

Runs the bundled demo on a frozen virtual clock (see `_virtual_time.py`), lets it
work for a while, and saves SVG screenshots of the dashboard, a worker's detail and
the dead-letter queue. Nothing is drawn by hand, and the same command gives the same
pictures every time.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
from collections.abc import Sequence
from datetime import UTC
from pathlib import Path

from jobdeck import MemoryStore, Orchestrator, load_config
from jobdeck._cli import demo_config_path

from ._virtual_time import VirtualTime, deterministic_scheduling
from .app import DeckApp

SIZE = (140, 40)
#: Virtual seconds the demo runs before the first picture.
WARM_UP_S = 21.0
#: The worker whose detail is drawn.
DETAIL_WORKER = "flaky-api"


def demo_app(virtual_time: VirtualTime) -> DeckApp:
    config = load_config(demo_config_path())
    orch = Orchestrator.from_config(
        config,
        store=MemoryStore(history_per_worker=config.orchestrator.history_per_worker),
        now=virtual_time.now,
        rng=random.Random(7),
    )
    app = DeckApp(
        orch, title="demo", clock=virtual_time.now, tz=UTC,
        trio_clock=virtual_time.trio_clock, on_stop=virtual_time.release,
    )
    app.animation_level = "none"
    return app


async def _draw(out: Path) -> list[Path]:
    virtual_time = VirtualTime()
    app = demo_app(virtual_time)
    saved: list[Path] = []

    def save(name: str) -> None:
        path = out / name
        path.write_text(app.export_screenshot(title="jobdeck"))
        saved.append(path)

    async with app.run_test(size=SIZE) as pilot:
        try:
            await app.bridge.wait_ready()
            await virtual_time.advance(app, WARM_UP_S)
            await _settle(app, pilot)
            save("dashboard.svg")
            app.deck.worker_table.select_key(DETAIL_WORKER)
            await pilot.press("enter")
            await _settle(app, pilot)
            save("detail.svg")
            await pilot.press("escape", "3")
            await _settle(app, pilot)
            # An entry with a traceback says more than a timeout does.
            with_traceback = [e for e in app.model.dead_letters if e.traceback.strip()]
            if with_traceback:
                app.deck.dlq_table.select_key(str(with_traceback[0].id))
                await _settle(app, pilot)
            save("dead-letters.svg")
        finally:
            if app.bridge.running:
                app.exit()
                await asyncio.wait_for(app.bridge.wait_done(), 30)
    return saved


async def _settle(app: DeckApp, pilot: object) -> None:
    await app.bridge.settle()
    app.refresh_now()
    await pilot.pause()  # type: ignore[attr-defined]
    await app.workers.wait_for_complete()
    await pilot.pause()  # type: ignore[attr-defined]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobdeck.tui.screenshots", description=__doc__)
    parser.add_argument("out", nargs="?", default="docs", help="folder for the SVGs (docs)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # The demo's workers log through stdlib logging: keep it off the console.
    logging.getLogger("jobdeck").addHandler(logging.NullHandler())
    logging.getLogger("jobdeck").propagate = False
    random.seed(7)  # the demo's workers make up numbers with `random`
    with deterministic_scheduling():
        saved = asyncio.run(_draw(out))
    for path in saved:
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
