"""The footer: every key the screen offers, greyed out when it cannot act right now;
`?` and `q` always at the right edge."""

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
class _Item:
    """One key before it is drawn."""

    key: str
    action: str
    shown: str
    description: str
    enabled: bool
    tooltip: str
    palette: bool = False

    def texts(self, *, short: bool) -> tuple[str, str]:
        """(key text, description text); short: the palette's key without its words."""
        if self.palette:
            return (self.shown, "" if short else f" {self.description} ")
        if not self.description:
            return (self.shown, "")
        return (f" {self.shown} ", f"{self.description} ")

    def width(self, *, short: bool) -> int:
        return sum(len(text) for text in self.texts(short=short)) + (1 if self.palette else 0)


def _draw(
    items: list[_Item], styles: tuple[Style, Style, Style], *, short: bool
) -> tuple[list[Segment], list[_Key]]:
    """Segments for `items` side by side from x = 0, and where each key sits."""
    key_style, text_style, separator = styles
    dim = Style(dim=True)
    segments: list[Segment] = []
    keys: list[_Key] = []
    x = 0
    for item in items:
        extra = Style.null() if item.enabled else dim
        key_text, text = item.texts(short=short)
        start = x
        if item.palette:
            segments.append(Segment("▏", separator))
            x += 1
        segments.append(Segment(key_text, key_style + extra))
        if text:
            segments.append(Segment(text, text_style + extra))
        x += len(key_text) + len(text)
        keys.append(_Key(start, x, item.key, item.enabled, item.tooltip))
    return segments, keys


def _length(segments: list[Segment]) -> int:
    return sum(segment.cell_length for segment in segments)


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

    #: Actions kept at the right edge whatever the width: help and quit are never cut.
    PINNED = ("help", "quit")

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._line: Strip | None = None
        self._keys: list[_Key] = []

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
        self._line = None  # what fits, and where the pinned keys sit, depend on the width

    @property
    def shown_keys(self) -> list[str]:
        """The keys drawn (as bound), left to right, pinned ones included."""
        if self._line is None:
            self._line = self._build(self.size.width)
        return [key.key for key in self._keys]

    # ------------------------------------------------------------------ drawing

    def render_line(self, y: int) -> Strip:
        if self._line is None:
            self._line = self._build(self.size.width)
        return self._line

    def _items(self) -> tuple[list[_Item], list[_Item]]:
        """The screen's keys (left) and the pinned ones with the palette's (right)."""
        app = self.app
        active = self.screen.active_bindings
        left: list[_Item] = []
        right: list[_Item] = []
        seen: set[str] = set()
        palette = app.COMMAND_PALETTE_BINDING
        for key, (_, binding, enabled, tooltip) in active.items():
            if key == palette or not binding.show or binding.action in seen:
                continue
            seen.add(binding.action)
            item = _Item(binding.key, binding.action, app.get_key_display(binding),
                         binding.description, enabled, tooltip or binding.description)
            (right if binding.action in self.PINNED else left).append(item)
        right.sort(key=lambda item: self.PINNED.index(item.action))
        if app.ENABLE_COMMAND_PALETTE and palette in active:
            _, binding, enabled, tooltip = active[palette]
            right.append(_Item(binding.key, binding.action, app.get_key_display(binding),
                               binding.description, enabled,
                               binding.tooltip or binding.description, palette=True))
        return left, right

    def _build(self, width: int) -> Strip:
        """The line at `width`: the screen's keys from the left, as many as fit whole
        (`…` when some are left out: `?` lists them), and help, quit and the palette's
        key at the right edge, always."""
        base = self.rich_style
        item_style = base + self.get_component_rich_style("key-bar--item")
        styles = (
            item_style + self.get_component_rich_style("key-bar--key"),
            item_style + self.get_component_rich_style("key-bar--description"),
            base + self.get_component_rich_style("key-bar--separator"),
        )
        left, right = self._items()
        # The palette's description goes first when space is short, then the others'.
        right_segments, right_keys = _draw(right, styles, short=False)
        if sum(item.width(short=False) for item in left) + _length(right_segments) > width:
            right_segments, right_keys = _draw(right, styles, short=True)
        room = max(0, width - _length(right_segments))
        fitted: list[_Item] = []
        used = 0
        for index, item in enumerate(left):
            more = index < len(left) - 1
            if used + item.width(short=False) + (2 if more else 0) > room:
                break
            fitted.append(item)
            used += item.width(short=False)
        left_segments, left_keys = _draw(fitted, styles, short=False)
        if len(fitted) < len(left):
            left_segments.append(Segment(" …", styles[2]))
        start = width - _length(right_segments)
        self._keys = left_keys + [
            attrs.evolve(key, start=key.start + start, end=key.end + start) for key in right_keys
        ]
        strip = Strip(left_segments).adjust_cell_length(start, base)
        return Strip.join([strip, Strip(right_segments)]).adjust_cell_length(width, base)

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
