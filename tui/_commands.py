"""The command palette (ctrl+p): "Trigger <worker>", "Enable <worker>" and the like."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import TYPE_CHECKING, cast

from textual.command import DiscoveryHit, Hit, Hits, Provider

from jobdeck import OrchestratorState

if TYPE_CHECKING:
    from .app import DeckApp

#: (text, callback, help) of one palette command.
Command = tuple[str, Callable[[], object], str]


class DeckCommands(Provider):
    """Worker and orchestrator commands, built from the latest snapshot."""

    @property
    def deck_app(self) -> DeckApp:
        return cast("DeckApp", self.app)

    def _global_commands(self) -> Iterator[Command]:
        app = self.deck_app
        snapshot = app.snapshot
        if snapshot is None or app.stopping:
            return
        if snapshot.state == OrchestratorState.PAUSED:
            yield ("Resume all workers", app.resume_all, "Start runs again")
        else:
            yield ("Pause all workers", app.pause_all, "No new runs start until resumed")
        if snapshot.dlq_size:
            yield (
                "Purge the dead-letter queue", app.ask_purge,
                f"Delete all {snapshot.dlq_size} dead letters (asks first)",
            )

    def _worker_commands(self, only: str | None = None) -> Iterator[Command]:
        app = self.deck_app
        snapshot = app.snapshot
        if snapshot is None:
            return
        for worker in snapshot.workers:
            name = worker.name
            if only is not None and name != only:
                continue
            if not app.stopping:
                yield (f"Trigger {name}", partial(app.trigger_worker, name), "Run it once now")
                yield (
                    f"Trigger {name} with a payload…", partial(app.ask_payload, name),
                    "Type a JSON payload for one run",
                )
                if not worker.may_run:
                    yield (
                        f"Enable {name}", partial(app.enable_worker, name),
                        "Enable it; closes an open circuit",
                    )
                if worker.enabled:
                    yield (
                        f"Disable {name}", partial(app.disable_worker, name),
                        "No runs start; triggers are kept",
                    )
            yield (f"Show {name}", partial(app.open_detail, name), "Spec, runs, last error")
            yield (f"Logs of {name}", partial(app.follow_logs, name), "Follow its log lines")

    async def discover(self) -> Hits:
        selected = self.deck_app.selected_worker_name
        for text, callback, help_text in self._global_commands():
            yield DiscoveryHit(text, callback, help=help_text)
        if selected is not None:
            for text, callback, help_text in self._worker_commands(selected):
                yield DiscoveryHit(text, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for source in (self._global_commands(), self._worker_commands()):
            for text, callback, help_text in source:
                score = matcher.match(text)
                if score > 0:
                    yield Hit(score, matcher.highlight(text), callback, text=text, help=help_text)
