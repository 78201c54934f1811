"""The command palette (ctrl+p): "Trigger <worker>", "Enable <worker>" and the like."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import Protocol, cast

from textual.command import DiscoveryHit, Hit, Hits, Provider

from jobdeck import OrchestratorState, WorkerStatus

from ._cells import plural
from ._controller import DeckController
from ._model import DeckModel

#: (text, callback, help) of one palette command.
Command = tuple[str, Callable[[], object], str]


class DeckHost(Protocol):
    """What the palette needs of the app it opens in."""

    model: DeckModel
    controller: DeckController


class DeckCommands(Provider):
    """Worker and orchestrator commands, built from the latest snapshot."""

    @property
    def host(self) -> DeckHost:
        return cast(DeckHost, self.app)

    def _global_commands(self) -> Iterator[Command]:
        model, controls = self.host.model, self.host.controller
        snapshot = model.snapshot
        if snapshot is None or model.stopping:
            return
        if snapshot.state == OrchestratorState.PAUSED:
            yield ("Resume all workers", controls.resume_all, "Start runs again")
        else:
            yield ("Pause all workers", controls.pause_all, "No new runs start until resumed")
        if snapshot.dlq_size:
            yield (
                "Purge the dead-letter queue", controls.ask_purge,
                f"Delete {plural(snapshot.dlq_size, 'dead letter')} (asks first)",
            )

    def _worker_commands(self, only: str | None = None) -> Iterator[Command]:
        model, controls = self.host.model, self.host.controller
        snapshot = model.snapshot
        if snapshot is None:
            return
        for worker in snapshot.workers:
            name = worker.name
            if only is not None and name != only:
                continue
            if not model.stopping:
                yield (f"Trigger {name}", partial(controls.trigger_worker, name),
                       "Run it once now")
                yield (
                    f"Trigger {name} with a payload…", partial(controls.ask_payload, name),
                    "Type a JSON payload for one run",
                )
                if worker.state == WorkerStatus.CIRCUIT_OPEN:
                    yield (
                        f"Reset the circuit of {name}", partial(controls.enable_worker, name),
                        "Failures back to 0: runs start again",
                    )
                elif not worker.enabled:
                    yield (f"Enable {name}", partial(controls.enable_worker, name),
                           "Runs start again")
                if worker.enabled:
                    yield (
                        f"Disable {name}", partial(controls.disable_worker, name),
                        "No runs start; triggers are kept",
                    )
            yield (f"Show {name}", partial(controls.open_detail, name), "Spec, runs, last error")
            yield (f"Logs of {name}", partial(controls.follow_logs, name),
                   "Follow its log lines")

    async def discover(self) -> Hits:
        selected = self.host.controller.selected_worker_name
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
