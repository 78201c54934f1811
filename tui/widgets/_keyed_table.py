"""A DataTable kept in step with a keyed list of rows by touching only what changed."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.coordinate import Coordinate
from textual.widgets import DataTable

from .._cells import Cell, cell_text

#: One row: its key and its cells, in column order.
Row = tuple[str, tuple[Cell, ...]]


class KeyedTable(DataTable[Text]):
    """A row-cursor DataTable whose rows are keyed, updated in place by `sync()`.

    `sync()` compares each cell with what the table already shows and calls
    `update_cell` only for the cells that differ; rows are added and removed by key,
    and reordered only when the order changed. It never clears and re-adds: at a
    thousand rows that would cost a full re-render several times a second. Call it
    inside `App.batch_update()` so many cell changes make one frame.
    """

    DEFAULT_CSS = """
    KeyedTable {
        height: 1fr;
        scrollbar-gutter: stable;
    }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes, cursor_type="row", zebra_stripes=False)
        self._shown: dict[str, tuple[Cell, ...]] = {}
        self._order: list[str] = []
        # The Text object in each row's first column: `DataTable.sort` hands its key
        # function cell values, not row keys, so rows are told apart by that object.
        self._first_cells: dict[str, Text] = {}
        #: Cells written by the last `sync()` (added rows count every cell).
        self.cells_written = 0
        #: Rows are kept only if one of their cells contains this (any case); "" keeps all.
        self.filter_text = ""
        #: Rows offered to the last `sync()`, before the filter.
        self.total_rows = 0

    @property
    def selected_key(self) -> str | None:
        """The key of the row under the cursor, or None when the table is empty."""
        if self.row_count == 0:
            return None
        row = min(max(self.cursor_row, 0), self.row_count - 1)
        row_key, _ = self.coordinate_to_cell_key(Coordinate(row, 0))
        return row_key.value

    def select_key(self, key: str) -> None:
        """Move the cursor to the row with `key`, if it is shown."""
        if key in self._shown:
            self.move_cursor(row=self.get_row_index(key), animate=False)

    def reset_rows(self) -> None:
        """Forget every row (and column): the next `sync()` builds the table afresh."""
        self.clear(columns=True)
        self._shown.clear()
        self._order.clear()
        self._first_cells.clear()

    def sync(self, rows: Sequence[Row]) -> int:
        """Make the table show `rows` that pass the filter, in that order; returns cells
        written."""
        self.total_rows = len(rows)
        query = self.filter_text.strip().lower()
        if query:
            rows = [row for row in rows if any(query in text.lower() for text, _ in row[1])]
        selected = self.selected_key
        wanted = {key: cells for key, cells in rows}
        written = 0
        for key in [key for key in self._order if key not in wanted]:
            self.remove_row(key)
            del self._shown[key]
            del self._first_cells[key]
        order = [key for key in self._order if key in wanted]
        column_keys = list(self.columns)
        for key, cells in rows:
            before = self._shown.get(key)
            if before is None:
                texts = [cell_text(cell) for cell in cells]
                self.add_row(*texts, key=key)
                self._first_cells[key] = texts[0]
                order.append(key)
                written += len(cells)
            elif before != cells:
                for index, (new, old) in enumerate(zip(cells, before, strict=True)):
                    if new != old:
                        text = cell_text(new)
                        self.update_cell(key, column_keys[index], text)
                        if index == 0:
                            self._first_cells[key] = text
                        written += 1
            self._shown[key] = cells
        target = [key for key, _ in rows]
        if order != target:
            rank = {id(self._first_cells[key]): index for index, key in enumerate(target)}
            self.sort(column_keys[0], key=lambda cell: rank[id(cell)])
        self._order = target
        # The cursor follows its row (by key), not its position.
        if selected is not None and selected in wanted:
            if self.get_row_index(selected) != self.cursor_row:
                self.select_key(selected)
        self.cells_written = written
        return written
