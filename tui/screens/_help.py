"""The key reference (`?`): every binding of the dashboard, grouped, from the BINDINGS."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

#: (section title, bindings) as the help screen lists them.
Section = tuple[str, Sequence[Binding]]


def key_label(binding: Binding) -> str:
    """How a key is written in the help: `t`, `T`, `/`, `esc`, `ctrl+p`, `?`."""
    if binding.key_display:
        return binding.key_display
    return {"question_mark": "?", "slash": "/", "escape": "esc", "enter": "enter"}.get(
        binding.key, binding.key
    )


def help_table(sections: Iterable[Section]) -> Table:
    """One column of sections: key, then what it does (a key bound twice: both, joined)."""
    table = Table.grid(padding=(0, 2))
    table.add_column(justify="right", style="bold cyan", no_wrap=True)
    table.add_column()
    first = True
    for title, bindings in sections:
        if not first:
            table.add_row("", "")
        first = False
        table.add_row("", Text(title, style="bold underline"))
        texts: dict[str, list[str]] = {}
        for binding in bindings:
            text = binding.tooltip or binding.description
            known = texts.setdefault(key_label(binding), [])
            if text not in known:
                known.append(text)
        for key, known in texts.items():
            table.add_row(key, " · ".join(known))
    return table


def help_columns(left: Sequence[Section], right: Sequence[Section]) -> Table:
    """Two columns of sections side by side."""
    grid = Table.grid(padding=(0, 4), expand=True)
    grid.add_column(ratio=1)
    grid.add_column(ratio=1)
    grid.add_row(help_table(left), help_table(right))
    return grid


class HelpScreen(ModalScreen[None]):
    """Every key, what it does, where it works. `esc`, `?` or `q` closes it."""

    DEFAULT_CSS = """
    HelpScreen {
        align: center middle;
    }
    HelpScreen > VerticalScroll {
        width: 136;
        max-width: 100%;
        height: auto;
        max-height: 90%;
        border: round $primary;
        border-title-color: $text;
        background: $surface;
        padding: 0 2;
    }
    """

    BINDINGS = [
        Binding("escape,question_mark,q", "app.pop_screen", "Close", key_display="esc"),
    ]

    def __init__(self, left: Sequence[Section], right: Sequence[Section]) -> None:
        super().__init__(id="help")
        self._left = left
        self._right = right

    def compose(self) -> ComposeResult:
        scroll = VerticalScroll()
        scroll.border_title = "jobdeck keys"
        scroll.border_subtitle = "esc closes"
        with scroll:
            yield Static(help_columns(self._left, self._right))
