"""The cluster line: in cluster mode, the database, nodes, slots, this node, the listener."""

from __future__ import annotations

from rich.text import Text
from textual import events
from textual.widgets import Static

from jobdeck import ClusterSnapshot

from .._cells import cluster_line


class ClusterBar(Static):
    """One line under the status bar, shown only in cluster mode.

    What it shows comes from the snapshot, which reads the node's cached view of the
    cluster (refreshed at most once a second), never the database.
    """

    DEFAULT_CSS = """
    ClusterBar {
        height: 1;
        background: $panel;
        color: $foreground;
        display: none;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self._shown: Text | None = None
        self._last: ClusterSnapshot | None = None

    def show(self, cluster: ClusterSnapshot | None) -> None:
        """Show `cluster`; None (local mode) hides the line."""
        self._last = cluster
        if cluster is None:
            if self.display:
                self.display = False
            return
        if not self.display:
            self.display = True
        text = cluster_line(cluster, self.size.width)
        if text != self._shown:
            self._shown = text
            self.update(text, layout=False)

    def on_resize(self, event: events.Resize) -> None:
        if self._last is not None:
            self.show(self._last)
