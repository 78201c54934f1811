"""Recent runs of every worker, newest first."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from jobdeck import RunRecord, RunStatus

from .._cells import RUN_STATUS_STYLES, Cell, ago, one_line, seconds_text
from ._keyed_table import KeyedTable

COLUMNS: tuple[tuple[str, str, int | None], ...] = (
    ("started", "started", 9),
    ("worker", "worker", 18),
    ("source", "source", 10),
    ("status", "status", 11),
    ("attempts", "tries", 5),
    ("took", "took", 7),
    ("error", "error", None),
)


def run_row(run: RunRecord, now: datetime) -> tuple[Cell, ...]:
    status = run.status
    if run.duration_s is not None:
        took = seconds_text(run.duration_s)
    elif run.ended_at is None:
        took = seconds_text((now - run.started_at).total_seconds())
    else:
        took = ""
    return (
        (ago(run.started_at, now), ""),
        (run.worker, "bold"),
        (run.trigger.source.value, "bright_black"),
        (status.value, RUN_STATUS_STYLES.get(status, "")),
        ("" if status == RunStatus.RUNNING else str(run.attempts), ""),
        (took, ""),
        (one_line(run.error), "red" if status == RunStatus.FAILED else "yellow"),
    )


class HistoryTable(KeyedTable):
    """The last runs across all workers, with outcome, attempts, duration and error."""

    DEFAULT_CSS = """
    HistoryTable {
        height: 1fr;
    }
    """

    def on_mount(self) -> None:
        for key, label, width in COLUMNS:
            self.add_column(label, width=width, key=key)

    def show(self, runs: Sequence[RunRecord], now: datetime) -> int:
        """Show `runs` (newest first); returns how many cells were written."""
        return self.sync([(run.id, run_row(run, now)) for run in runs])
