"""The workers table: one row per worker, filtered, sorted, drawing only the rows on screen.

A Line API `ScrollView`, not a `DataTable`: with a thousand workers a DataTable holds a
thousand rows of cells that each refresh has to compare and each re-sort has to move,
and it costs a layout whenever they change. Here a refresh orders the snapshot's workers
(one sort key each) and works out cells for the rows on screen only; a row is drawn
when it comes into view or its cells change, and `s` re-sorts a list of names.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from jobdeck import OrchestratorSnapshot, WorkerSnapshot

from .._cells import (
    SORT_COLUMNS,
    Cell,
    cell_text,
    matches,
    order_workers,
    sort_arrow,
    worker_columns,
    worker_row,
)

#: Blank cells either side of each cell's text.
CELL_PADDING = 1
#: Drawn rows kept for repaints and for scrolling back.
STRIP_CACHE = 1024

#: What one line of the table shows: (row key, cells, under the cursor).
Drawn = tuple[str, tuple[Cell, ...], bool]


def _node_names(snapshot: OrchestratorSnapshot) -> list[str] | None:
    """Cluster mode: this node's name and those running workers now; None in local mode."""
    if snapshot.cluster is None:
        return None
    return [snapshot.cluster.node, *(w.node for w in snapshot.workers if w.node)]


def _fit(text: str, width: int) -> str:
    """`text` cut (with an ellipsis) or padded to exactly `width` cells."""
    length = cell_len(text)
    if length <= width:
        return text + " " * (width - length)
    return set_cell_size(text, width - 1) + "…"


class WorkerTable(ScrollView, can_focus=True):
    """Every worker (or those the filter keeps) with its state and why it is not running.

    `show(snapshot)` brings the table in line with a snapshot; only rows on screen get
    cells, and only lines whose row or cells changed are repainted. The table is never
    wider than the screen: on a narrow one the least wanted columns go (trend, priority,
    mode first, `_cells.worker_columns`) and `why` takes the width the others leave.
    The cursor follows its worker, not its position.
    """

    DEFAULT_CSS = """
    WorkerTable {
        height: 1fr;
        background: $surface;
        color: $foreground;
        scrollbar-gutter: stable;
        &:focus {
            background-tint: $foreground 5%;
            & > .worker-table--cursor {
                background: $block-cursor-background;
                color: $block-cursor-foreground;
                text-style: $block-cursor-text-style;
            }
            & > .worker-table--header {
                background-tint: $foreground 5%;
            }
        }
        & > .worker-table--header {
            text-style: bold;
            background: $panel;
            color: $foreground;
        }
        &:ansi > .worker-table--header {
            background: ansi_bright_blue;
            color: ansi_default;
        }
        & > .worker-table--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
            text-style: $block-cursor-blurred-text-style;
        }
    }
    """

    COMPONENT_CLASSES: ClassVar[set[str]] = {"worker-table--header", "worker-table--cursor"}

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "enter",
            "select_cursor",
            "Detail",
            tooltip="Open the selected worker: spec, recent runs, last error, pending triggers",
        ),
        Binding("up", "cursor_up", "Cursor up", show=False),
        Binding("down", "cursor_down", "Cursor down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("home,ctrl+home", "cursor_top", "Top", show=False),
        Binding("end,ctrl+end", "cursor_bottom", "Bottom", show=False),
    ]

    class Highlighted(Message):
        """The cursor moved to another worker (`key` None: the table is empty)."""

        def __init__(self, table: WorkerTable, key: str | None) -> None:
            super().__init__()
            self.table = table
            self.key = key

        @property
        def control(self) -> WorkerTable:
            return self.table

    class Selected(Message):
        """`enter`, or a click on the highlighted row: open worker `key`."""

        def __init__(self, table: WorkerTable, key: str) -> None:
            super().__init__()
            self.table = table
            self.key = key

        @property
        def control(self) -> WorkerTable:
            return self.table

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.filter_text = ""
        self.sort_by = "config"
        #: `S`: the sort's direction flipped.
        self.sort_reverse = False
        #: Workers shown after the filter.
        self.shown_count = 0
        #: Row index of the cursor (0 is the first worker, under the header).
        self.cursor_row = 0
        #: Cells written by the last `show()`: cells of rows on screen that changed.
        self.cells_written = 0
        self._snapshot: OrchestratorSnapshot | None = None
        self._built_for: tuple[int, str, bool, int, int | None] | None = None
        #: (key, label, width) per column shown, in order.
        self._columns: list[tuple[str, str, int]] = []
        self._column_keys: tuple[str, ...] = ()
        self._table_width = 0
        self._rows: list[WorkerSnapshot] = []
        self._keys: list[str] = []
        self._index: dict[str, int] = {}
        self._cursor_key: str | None = None
        # Cells last worked out per worker, and for which `show()` (its generation).
        self._cells: dict[str, tuple[Cell, ...]] = {}
        self._cells_generation: dict[str, int] = {}
        self._generation = 0
        # What each line on screen was drawn with (line 0 is the header).
        self._drawn: dict[int, Drawn] = {}
        self._strips: dict[tuple[tuple[Cell, ...], bool], Strip] = {}
        self._styles: tuple[Style, Style, Style] | None = None

    # ------------------------------------------------------------------ reading

    @property
    def columns(self) -> dict[str, str]:
        """Column key → label, in order."""
        return {key: label for key, label, _ in self._columns}

    @property
    def row_count(self) -> int:
        return len(self._keys)

    @property
    def keys(self) -> list[str]:
        """Worker names in the order shown (after the filter)."""
        return list(self._keys)

    @property
    def selected_key(self) -> str | None:
        """The worker under the cursor, or None when the table is empty."""
        return self._keys[self.cursor_row] if self._keys else None

    @property
    def selected_worker(self) -> str | None:
        return self.selected_key

    def get_cell(self, key: str, column: str) -> Text:
        """What the cell of worker `key` in `column` shows, as of the last snapshot."""
        index = [k for k, _, _ in self._columns].index(column)
        return cell_text(self._cells_of(self._index[key])[0][index])

    # ------------------------------------------------------------------ showing

    def show(self, snapshot: OrchestratorSnapshot) -> int:
        """Show `snapshot`; returns how many cells of rows on screen changed."""
        self._snapshot = snapshot
        self._generation += 1
        nodes = _node_names(snapshot)
        layout = (self.scrollable_content_region.width, self.sort_by, self.sort_reverse,
                  len(snapshot.workers), None if nodes is None else max(map(len, nodes)))
        if self._built_for != layout:
            self._build_columns(snapshot)
            self._built_for = layout
        workers: Sequence[WorkerSnapshot] = snapshot.workers
        if self.filter_text:
            workers = [w for w in workers if matches(w, self.filter_text)]
        if self.sort_by != "config" or self.sort_reverse:
            workers = order_workers(workers, self.sort_by, self.sort_reverse)
        self._rows = list(workers)
        self._keys = [worker.name for worker in self._rows]
        self._index = {key: row for row, key in enumerate(self._keys)}
        self.shown_count = len(self._keys)
        size = Size(self._table_width, len(self._keys) + 1)
        if self.virtual_size != size:
            self.virtual_size = size
        self._place_cursor()
        self.cells_written = self._repaint_changed()
        return self.cells_written

    def set_filter(self, text: str) -> None:
        """Keep only workers whose name contains `text`, or whose state is `text`.

        Takes effect at the next `show()`.
        """
        self.filter_text = text

    def set_sort(self, sort_by: str, reverse: bool = False) -> None:
        """Order rows by `sort_by` (a key of `_cells.SORTS`), flipped if `reverse`; the
        column shows an arrow.

        Takes effect at the next `show()`.
        """
        self.sort_by = sort_by
        self.sort_reverse = reverse

    def _build_columns(self, snapshot: OrchestratorSnapshot) -> None:
        arrow_on = SORT_COLUMNS.get(self.sort_by)
        arrow = sort_arrow(self.sort_by, self.sort_reverse)
        self._columns = [
            (key, f"{label} {arrow}" if key == arrow_on else label, width)
            for key, label, width in worker_columns(
                [w.name for w in snapshot.workers], self.scrollable_content_region.width,
                2 * CELL_PADDING, _node_names(snapshot),
            )
        ]
        self._column_keys = tuple(key for key, _, _ in self._columns)
        self._table_width = sum(width + 2 * CELL_PADDING for _, _, width in self._columns)
        self._strips.clear()
        self._drawn.clear()
        self.refresh()

    def _cells_of(self, row: int) -> tuple[tuple[Cell, ...], int]:
        """The cells of row `row` as of the last snapshot, and how many changed."""
        worker = self._rows[row]
        key = worker.name
        if self._cells_generation.get(key) == self._generation:
            return self._cells[key], 0
        assert self._snapshot is not None
        by_column = worker_row(worker, self._snapshot.taken_at)
        cells = tuple(by_column[column] for column in self._column_keys)
        before = self._cells.get(key)
        if before is None or len(before) != len(cells):
            changed = len(cells)
        else:
            changed = sum(new != old for new, old in zip(cells, before, strict=True))
        self._cells[key] = cells
        self._cells_generation[key] = self._generation
        return cells, changed

    def _repaint_changed(self) -> int:
        """Repaint the lines on screen whose row or cells changed; returns cells changed."""
        written = 0
        top = self.scroll_offset.y
        width = self.size.width
        for line in range(1, self._visible_rows() + 1):
            row = top + line - 1
            if row >= len(self._keys):
                if self._drawn.pop(line, None) is not None:
                    self.refresh(Region(0, line, width, 1))
                continue
            cells, changed = self._cells_of(row)
            written += changed
            drawn = (self._keys[row], cells, row == self.cursor_row)
            if self._drawn.get(line) != drawn:
                self.refresh(Region(0, line, width, 1))
        return written

    # ------------------------------------------------------------------ cursor

    def _visible_rows(self) -> int:
        """Rows of workers on screen (the header takes the first line)."""
        return max(0, self.scrollable_content_region.height - 1)

    def _place_cursor(self) -> None:
        """Keep the cursor on its worker (if still shown), and on screen."""
        if self._cursor_key is not None and self._cursor_key in self._index:
            self._move_to(self._index[self._cursor_key])
        else:
            self._move_to(self.cursor_row)

    def _move_to(self, row: int) -> None:
        """Put the cursor on `row` (clamped) and in view; say so if its worker changed."""
        row = min(max(row, 0), max(0, len(self._keys) - 1))
        before = self._cursor_key
        self.cursor_row = row
        self._cursor_key = self._keys[row] if self._keys else None
        self._scroll_to_row(row)
        if self._cursor_key != before:
            self.post_message(WorkerTable.Highlighted(self, self._cursor_key))

    def _scroll_to_row(self, row: int) -> None:
        top = self.scroll_offset.y
        visible = self._visible_rows()
        if visible <= 0:
            return
        if row < top:
            self.scroll_to(y=row, animate=False)
        elif row >= top + visible:
            self.scroll_to(y=row - visible + 1, animate=False)
        else:
            self._repaint_cursor_lines()

    def _repaint_cursor_lines(self) -> None:
        """Repaint the line the cursor left and the one it is on (no scrolling)."""
        top = self.scroll_offset.y
        width = self.size.width
        for line, (_, _, under_cursor) in self._drawn.items():
            if line and under_cursor != (top + line - 1 == self.cursor_row):
                self.refresh(Region(0, line, width, 1))
        cursor_line = self.cursor_row - top + 1
        if 1 <= cursor_line <= self._visible_rows():
            self.refresh(Region(0, cursor_line, width, 1))

    def move_cursor(self, *, row: int, animate: bool = False) -> None:
        """Put the cursor on row `row` (clamped), scrolling it into view."""
        self._move_to(row)

    def select_key(self, key: str) -> None:
        """Move the cursor to the row of worker `key`, if it is shown."""
        if key in self._index:
            self._move_to(self._index[key])

    def action_cursor_down(self) -> None:
        self._move_to(self.cursor_row + 1)

    def action_cursor_up(self) -> None:
        self._move_to(self.cursor_row - 1)

    def action_page_down(self) -> None:
        self._move_to(self.cursor_row + max(1, self._visible_rows() - 1))

    def action_page_up(self) -> None:
        self._move_to(self.cursor_row - max(1, self._visible_rows() - 1))

    def action_cursor_top(self) -> None:
        self._move_to(0)

    def action_cursor_bottom(self) -> None:
        self._move_to(len(self._keys) - 1)

    def action_select_cursor(self) -> None:
        if self._cursor_key is not None:
            self.post_message(WorkerTable.Selected(self, self._cursor_key))

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None or offset.y < 1:
            return
        row = self.scroll_offset.y + offset.y - 1
        if row >= len(self._keys):
            return
        if row == self.cursor_row:
            self.action_select_cursor()
        else:
            self._move_to(row)

    # ------------------------------------------------------------------ drawing

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        base, header, cursor = self._table_styles()
        scroll_x = self.scroll_offset.x
        if y == 0:
            strip = self._strips.get(((), False))
            if strip is None:
                strip = self._header_strip(header)
                self._strips[((), False)] = strip
            self._drawn[0] = ("", (), False)
            return strip.crop_extend(scroll_x, scroll_x + width, header)
        row = self.scroll_offset.y + y - 1
        if row >= len(self._keys):
            self._drawn.pop(y, None)
            return Strip.blank(width, base)
        cells, _ = self._cells_of(row)
        under_cursor = row == self.cursor_row
        self._drawn[y] = (self._keys[row], cells, under_cursor)
        strip = self._strips.get((cells, under_cursor))
        if strip is None:
            if len(self._strips) > STRIP_CACHE:
                self._strips.clear()
            if under_cursor:
                strip = self._row_strip(cells, base + cursor, Style(color=cursor.color))
            else:
                strip = self._row_strip(cells, base, None)
            self._strips[(cells, under_cursor)] = strip
        fill = base + cursor if under_cursor else base
        return strip.crop_extend(scroll_x, scroll_x + width, fill)

    def _row_strip(self, cells: Sequence[Cell], pre: Style, post: Style | None) -> Strip:
        """One row: each cell padded, in its own style over the row's (`pre`), with the
        cursor's colour over everything (`post`) on the cursor row."""
        pad_style = pre + post if post is not None else pre
        pad = " " * CELL_PADDING
        segments: list[Segment] = []
        append = segments.append
        for (text, style), (_, _, width) in zip(cells, self._columns, strict=True):
            cell_style = pre + Style.parse(style) if style else pre
            if post is not None:
                cell_style += post
            append(Segment(pad, pad_style))
            append(Segment(_fit(text, width), cell_style))
            append(Segment(pad, pad_style))
        return Strip(segments, self._table_width)

    def _header_strip(self, header: Style) -> Strip:
        pad = " " * CELL_PADDING
        segments = [
            Segment(pad + _fit(label, width) + pad, header) for _, label, width in self._columns
        ]
        return Strip(segments, self._table_width)

    def _table_styles(self) -> tuple[Style, Style, Style]:
        """(base, header, cursor): worked out once per change of style or focus."""
        if self._styles is None:
            self._styles = (
                self.rich_style,
                self.get_component_rich_style("worker-table--header"),
                self.get_component_rich_style("worker-table--cursor"),
            )
        return self._styles

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._styles = None
        self._strips.clear()
        self._drawn.clear()
        self.refresh()

    def on_focus(self, event: events.Focus) -> None:
        self._restyle()

    def on_blur(self, event: events.Blur) -> None:
        self._restyle()

    def _restyle(self) -> None:
        self._styles = None
        self._strips.clear()
        self._drawn.clear()
        self.refresh()

    def on_resize(self, event: events.Resize) -> None:
        if self._snapshot is not None:
            self.show(self._snapshot)
