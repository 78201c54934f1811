"""The filter input above the workers table: a name fragment or a state word."""

from __future__ import annotations

from textual.widgets import Input


class FilterBar(Input):
    """Hidden until `/`; typing narrows the workers table at once, `esc` clears it."""

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

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(
            placeholder="filter: a name fragment, or a state (running, failing, disabled…) "
            "· enter keeps it · esc clears",
            id=id,
        )

    @property
    def is_open(self) -> bool:
        return self.has_class("-open")

    def open(self) -> None:
        self.add_class("-open")
        self.focus()

    def close(self) -> None:
        self.remove_class("-open")
        self.value = ""
