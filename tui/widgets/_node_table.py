"""The Nodes tab (cluster mode): one row per node, and the selected node in full.

Rows are what `GET /cluster` says of each node (`Orchestrator.cluster_status`), and the
detail lists the node's leases (`cluster_leases`): read about once a second while the
tab is shown, never per snapshot.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, tzinfo
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from .._cells import (
    DIM,
    NODE_STATE_STYLES,
    Cell,
    full_time,
    one_line,
    plural,
    seconds_text,
    spec_seconds,
)
from ._detail_panel import DetailPanel
from ._keyed_table import KeyedTable

#: Clock skew (seconds) past which a node's clock is flagged (SCALE.md: health degrades).
SKEW_WARN_S = 1.0

COLUMNS: tuple[tuple[str, str, int | None], ...] = (
    ("name", "node", 18),
    ("host", "host/pid", 18),
    ("state", "state", 8),
    ("used", "used/cap", 8),
    ("beat", "heartbeat", 10),
    ("lease", "lease", 6),
    ("skew", "skew", 8),
    ("config", "config", None),
)
#: Below this width the table leaves out host/pid and skew (the detail shows both).
NARROW = 110
NARROW_HIDDEN = frozenset({"host", "skew"})

Node = Mapping[str, Any]


def node_state(node: Node) -> str:
    """`alive`, `draining`, or `lost` once its lease is over (until a peer reaps it)."""
    expires = node.get("lease_expires_s")
    if expires is not None and expires < 0:
        return "lost"
    state = str(node.get("state") or "")
    return "alive" if state == "active" else state


def node_config(node: Node) -> Cell:
    """`same`, or how many workers differ from this node's config."""
    differences = node.get("spec_differences") or []
    if node.get("config_match", not differences):
        return ("same", "green")
    return (f"{plural(len(differences), 'worker')} differ", "bold red")


def node_row(node: Node) -> tuple[Cell, ...]:
    name = one_line(str(node.get("name", "")), 60)
    state = node_state(node)
    skew = node.get("clock_skew_s")
    beat = node.get("heartbeat_age_s")
    expires = node.get("lease_expires_s")
    used, capacity = node.get("used", 0), node.get("capacity", 0)
    return (
        (f"{name} (here)" if node.get("this_node") else name, "bold"),
        (one_line(f"{node.get('host', '')}/{node.get('pid', '')}", 60), DIM),
        (state, NODE_STATE_STYLES.get(state if state != "alive" else "active", "")),
        (f"{used}/{capacity}", "bold yellow" if capacity and used >= capacity else ""),
        ("" if beat is None else f"{seconds_text(beat)} ago", ""),
        ("" if expires is None else ("over" if expires < 0 else seconds_text(expires)),
         "bold red" if expires is not None and expires < 0 else ""),
        ("" if skew is None else _skew(skew),
         "bold yellow" if skew is not None and abs(skew) > SKEW_WARN_S else DIM),
        node_config(node),
    )


def _words(error: str) -> str:
    """An error on one line, its runs of blanks made one (drivers indent their hints)."""
    return one_line(" ".join(error.split()), 300)


class NodeTable(KeyedTable):
    """The cluster's nodes; the highlighted one is what `d` drains and `u` undrains."""

    DEFAULT_CSS = """
    NodeTable {
        height: auto;
        max-height: 50%;
        min-height: 4;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.nodes: dict[str, Node] = {}
        #: the column keys shown, chosen for the table's width.
        self.shown_columns: tuple[str, ...] = ()

    def _columns_for(self, width: int) -> tuple[str, ...]:
        return tuple(key for key, _, _ in COLUMNS
                     if width >= NARROW or key not in NARROW_HIDDEN)

    def _build_columns(self) -> None:
        self.reset_rows()
        self.shown_columns = self._columns_for(self.size.width)
        for key, label, width in COLUMNS:
            if key in self.shown_columns:
                self.add_column(label, width=width, key=key)

    def on_mount(self) -> None:
        self._build_columns()

    def on_resize(self) -> None:
        if self._columns_for(self.size.width) != self.shown_columns:
            self._build_columns()
            self.show(list(self.nodes.values()))

    @property
    def selected_node(self) -> Node | None:
        key = self.selected_key
        return self.nodes.get(key) if key is not None else None

    def show(self, nodes: Sequence[Node]) -> int:
        """Show `nodes` (as `GET /cluster` lists them); returns how many cells were written.

        Rows are keyed by node id: a node that joins again (a new incarnation) is a new row.
        """
        self.nodes = {str(node.get("id", node.get("name"))): node for node in nodes}
        keys = [key for key, _, _ in COLUMNS]
        index = [keys.index(key) for key in self.shown_columns]
        return self.sync([
            (key, tuple(row[i] for i in index))
            for key, row in ((key, node_row(node)) for key, node in self.nodes.items())
        ])


class NodeDetail(DetailPanel):
    """The highlighted node: where it runs, its lease, config differences and leases."""

    def __init__(self, *, tz: tzinfo | None = None, id: str | None = None) -> None:
        super().__init__(title="node", body_id="node-body", tz=tz, id=id)
        self._shown: object = None

    def show(self, node: Node | None, leases: Sequence[Node], error: str | None,
             read: bool) -> None:
        """Show `node` with its `leases` (or what stands in for it: not read yet, an
        error, no node)."""
        key = (repr(node), repr(leases), error, read)
        if key == self._shown:
            return
        self._shown = key
        if node is None:
            self.border_title = "node"
            if error:
                message = Text(f"The cluster could not be read: {_words(error)}",
                               style="bold red")
            elif not read:
                message = Text("Reading the cluster…", style=DIM)
            else:
                message = Text("No node is registered.", style=DIM)
            self._body.update(message)
            return
        name = one_line(str(node.get("name", "")), 60)
        self.border_title = f"node {name}" + (" · this node" if node.get("this_node") else "")
        self._body.update(self._node_renderable(node, leases, error))

    def _time(self, text: Any) -> str:
        """An ISO time from the API, as the dashboard shows times."""
        try:
            return full_time(datetime.fromisoformat(str(text)), self.tz)
        except ValueError:
            return one_line(str(text or ""))

    def _node_renderable(self, node: Node, leases: Sequence[Node],
                         error: str | None) -> RenderableType:
        fields = Table.grid(padding=(0, 2))
        fields.add_column(style=DIM, no_wrap=True)
        fields.add_column()
        state = node_state(node)
        state_text = Text(state, style=NODE_STATE_STYLES.get(
            state if state != "alive" else "active", ""))
        if state == "draining":
            state_text.append("  takes no new run; u undrains", style=DIM)
        elif state == "alive":
            state_text.append("  d drains it", style=DIM)
        elif state == "lost":
            state_text.append("  its lease is over: a peer reaps it and requeues its runs",
                              style=DIM)
        fields.add_row("state", state_text)
        fields.add_row("host / pid", one_line(f"{node.get('host', '')} / {node.get('pid', '')}"))
        fields.add_row("id", str(node.get("id", "")))
        fields.add_row("started", self._time(node.get("started_at")))
        fields.add_row("running", f"{node.get('used', 0)} of capacity {node.get('capacity', 0)}"
                       f" ({plural(int(node.get('leases', 0)), 'lease')})")
        lease_s = node.get("lease_seconds")
        expires = node.get("lease_expires_s")
        beat = node.get("heartbeat_age_s")
        fields.add_row(
            "lease",
            ("over" if expires is not None and expires < 0
             else f"{seconds_text(expires or 0)} left")
            + ("" if lease_s is None else f" of {spec_seconds(float(lease_s))}")
            + ("" if beat is None else f", last heartbeat {seconds_text(beat)} ago"),
        )
        lock = node.get("fast_failover_lock")
        fields.add_row("fast failover", "armed (listener holds its lock)" if lock
                       else Text("not armed: reaped only when its lease is over",
                                 style="yellow"))
        skew = node.get("clock_skew_s")
        if skew is not None:
            fields.add_row("clock skew", Text(
                f"{_skew(skew)} against the database",
                style="bold yellow" if abs(skew) > SKEW_WARN_S else ""))
        differences = list(node.get("spec_differences") or [])
        fields.add_row("config", Text("same workers and specs as this node", style="green")
                       if not differences else
                       Text("\n".join(one_line(str(d), 120) for d in differences),
                            style="bold red"))
        parts: list[RenderableType] = [fields]
        if error:
            parts.append(Text(f"\nlast read failed: {_words(error)}", style="bold red"))
        parts.append(Text(f"\nleases ({len(leases)})", style="bold"))
        if not leases:
            parts.append(Text("none: it runs nothing now", style=DIM))
        else:
            table = Table(box=None, padding=(0, 2, 0, 0), show_edge=False,
                          header_style=DIM)
            for label in ("worker", "run", "token", "phase", "attempt", "lease"):
                table.add_column(label, no_wrap=True)
            for lease in leases:
                expires_in = lease.get("lease_expires_s")
                run_id = lease.get("run_id")
                table.add_row(
                    Text(one_line(str(lease.get("worker", "")), 60), style="bold"),
                    str(run_id or ""),
                    str(lease.get("token", "")),
                    str(lease.get("phase", "")),
                    str(lease.get("attempt", "")),
                    "" if expires_in is None else seconds_text(expires_in),
                )
            parts.append(table)
        return Group(*parts)


def _skew(seconds: float) -> str:
    """A clock skew to the millisecond, signed, with no "-0.000s" for a skew that rounds to 0."""
    if abs(seconds) < 0.0005:
        return "0.000s"
    return f"{seconds:+.3f}s"
