"""The footer: every key the screen offers, greyed out when it cannot act right now."""

from __future__ import annotations

from typing import ClassVar

import attrs
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.screen import Screen
from textual.strip import Strip
from textual.widget import Widget


@attrs.frozen
class _Key:
    """One key as drawn: where it sits on the line, and what pressing it does."""

    start: int
    end: int
    key: str
    enabled: bool
    tooltip: str


class KeyBar(Widget):
    """The keys of the screen, one line at the bottom, drawn as Textual's `Footer` is.

    One widget drawing one line, where `Footer` mounts a widget per key: when what the
    keys can do changes (a pause, a selected worker that is already disabled) this
    repaints a line instead of recomposing and laying out a dozen widgets, which costs
    tens of milliseconds on the thread the core shares. A click presses the key; the
    pointer over a key shows what it does.
    """

    ALLOW_SELECT = False
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "key-bar--item",
        "key-bar--key",
        "key-bar--description",
        "key-bar--separator",
    }

    DEFAULT_CSS = """
    KeyBar {
        dock: bottom;
        height: 1;
        color: $footer-foreground;
        background: $footer-background;
        & > .key-bar--item {
            background: $footer-item-background;
        }
        & > .key-bar--key {
            color: $footer-key-foreground;
            background: $footer-key-background;
            text-style: bold;
        }
        & > .key-bar--description {
            color: $footer-description-foreground;
            background: $footer-description-background;
        }
        & > .key-bar--separator {
            color: $foreground 20%;
        }
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._line: tuple[list[Segment], list[Segment]] | None = None
        self._keys: list[_Key] = []
        self._palette_width = 0

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def _bindings_changed(self, screen: Screen[object]) -> None:
        if self.is_attached and screen is self.screen:
            self._line = None
            self.refresh()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._line = None

    def on_resize(self, event: events.Resize) -> None:
        self._line = None  # the palette's key sits at the right edge

    # ------------------------------------------------------------------ drawing

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        base = self.rich_style
        if self._line is None:
            self._line = self._build()
        left, right = self._line
        strip = Strip(left).crop_extend(0, max(0, width - self._palette_width), base)
        if right and width > self._palette_width:
            strip = Strip.join([strip, Strip(right)])
        return strip.adjust_cell_length(width, base)

    def _build(self) -> tuple[list[Segment], list[Segment]]:
        """The segments of the keys (left) and of the command palette's key (right)."""
        base = self.rich_style
        item = base + self.get_component_rich_style("key-bar--item")
        key_style = item + self.get_component_rich_style("key-bar--key")
        text_style = item + self.get_component_rich_style("key-bar--description")
        dim = Style(dim=True)
        app = self.app
        active = self.screen.active_bindings
        left: list[Segment] = []
        keys: list[_Key] = []
        x = 0
        seen: set[str] = set()
        for _, binding, enabled, tooltip in active.values():
            if not binding.show or binding.action in seen:
                continue
            seen.add(binding.action)
            shown_key = app.get_key_display(binding)
            key_text = f" {shown_key} " if binding.description else shown_key
            text = f"{binding.description} " if binding.description else ""
            extra = Style.null() if enabled else dim
            left.append(Segment(key_text, key_style + extra))
            if text:
                left.append(Segment(text, text_style + extra))
            end = x + len(key_text) + len(text)
            keys.append(_Key(x, end, binding.key, enabled, tooltip or binding.description))
            x = end
        right: list[Segment] = []
        self._palette_width = 0
        palette = app.COMMAND_PALETTE_BINDING
        if app.ENABLE_COMMAND_PALETTE and palette in active:
            _, binding, enabled, tooltip = active[palette]
            extra = Style.null() if enabled else dim
            separator = base + self.get_component_rich_style("key-bar--separator")
            shown_key = app.get_key_display(binding)
            right = [
                Segment("▏", separator),
                Segment(shown_key, key_style + extra),
                Segment(f" {binding.description} ", text_style + extra),
            ]
            self._palette_width = sum(segment.cell_length for segment in right)
            width = self.size.width
            keys.append(_Key(width - self._palette_width, width, binding.key, enabled,
                             binding.tooltip or binding.description))
        self._keys = keys
        return left, right

    # ------------------------------------------------------------------ pointer

    def _key_at(self, x: int) -> _Key | None:
        for key in self._keys:
            if key.start <= x < key.end:
                return key
        return None

    def on_mouse_down(self, event: events.MouseDown) -> None:
        key = self._key_at(event.x)
        if key is None:
            return
        if key.enabled:
            self.app.simulate_key(key.key)
        else:
            self.app.bell()

    def on_mouse_move(self, event: events.MouseMove) -> None:
        key = self._key_at(event.x)
        tooltip = key.tooltip if key is not None else None
        if tooltip != self.tooltip:
            self.tooltip = tooltip

    def on_leave(self, event: events.Leave) -> None:
        self.tooltip = None
