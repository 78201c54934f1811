"""The filter input above a tab's table (or the logs' search): hidden until `/`."""

from __future__ import annotations

from textual.widgets import Input

#: What each tab's bar asks for.
PLACEHOLDERS = {
    "workers": "filter: a name fragment, or a state (running, failing, circuit open…)",
    "logs": "search the logs: highlights every match; n / N next / previous",
    "dlq": "filter dead letters: a worker, an error fragment, a source",
    "history": "filter runs: a worker, a status (failed, interrupted…), a source, an error",
    "nodes": "filter nodes: a name, a host, a state (alive, draining, lost)",
}


class FilterBar(Input):
    """Hidden until `/`; typing narrows the tab's rows at once, `enter` keeps the filter,
    `esc` clears it."""

    DEFAULT_CSS = """
    FilterBar {
        display: none;
        height: 1;
        border: none;
        padding: 0 1;
        background: $boost;
    }
    FilterBar:focus {
        border: none;
        background: $boost;
    }
    FilterBar.-open {
        display: block;
    }
    """

    def __init__(self, tab: str, *, id: str | None = None) -> None:
        super().__init__(placeholder=f"{PLACEHOLDERS[tab]} · enter keeps it · esc clears", id=id)
        #: The tab whose rows (or lines) it filters.
        self.tab = tab

    @property
    def is_open(self) -> bool:
        return self.has_class("-open")

    def open(self) -> None:
        self.add_class("-open")
        self.focus()

    def close(self) -> None:
        self.remove_class("-open")
        self.value = ""
