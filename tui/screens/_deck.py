"""The main screen: status bar, the tabs (workers, logs, DLQ, history; nodes in cluster
mode, with the cluster line under the status bar), the footer."""

from __future__ import annotations

from collections.abc import Sequence

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Input, TabbedContent, TabPane

from jobdeck import (
    DeadLetter,
    Event,
    LogLine,
    OrchestratorSnapshot,
    OrchestratorState,
    WorkerSnapshot,
)

from .._cells import SORTS, sort_arrow
from .._model import DeckModel
from ..widgets import (
    LOG_LEVELS,
    ActivityFeed,
    ClusterBar,
    DeadLetterDetail,
    DeadLetterTable,
    FilterBar,
    FlashLine,
    HistoryTable,
    KeyBar,
    KeyedTable,
    LogView,
    NodeDetail,
    NodeTable,
    StatusBar,
    StopBanner,
    WorkerTable,
)
from ._controls import Controls, worker_key

#: Tab ids, in order (keys 1-5 and tab cycle through them). `nodes` shows only in
#: cluster mode: alone on its own store, jobdeck is one node and the tab stays hidden.
TABS = ("workers", "logs", "dlq", "history", "nodes")
TAB_TITLES = {"workers": "1 Workers", "logs": "2 Logs", "dlq": "3 Dead letters",
              "history": "4 History", "nodes": "5 Nodes"}
#: What `5` says in local mode, where there is no Nodes tab.
SINGLE_NODE = ("Single node: this jobdeck runs alone on its own store, so there is no Nodes"
               " view (cluster mode is --store postgresql://…)")

#: Actions that need a selected worker on the workers tab.
WORKER_ACTIONS = frozenset(
    {"trigger", "trigger_payload", "enable", "reset_circuit", "disable", "logs"}
)
#: Actions that act on the dead-letter queue.
DLQ_ACTIONS = frozenset({"replay", "delete", "purge"})
#: Actions of the Nodes tab (cluster mode).
NODE_ACTIONS = frozenset({"drain", "undrain"})
#: Actions that change something: greyed while jobdeck is stopping.
CONTROL_ACTIONS = frozenset(
    {"trigger", "trigger_payload", "enable", "reset_circuit", "disable", "pause", "resume",
     "replay", "delete", "purge", "drain", "undrain"}
)


#: Actions of the Logs tab.
LOG_ACTIONS = frozenset({"follow", "log_scope", "log_level", "next_match", "previous_match",
                         "search", "clear_search"})

#: Actions whose availability `update_bindings` watches.
_CHECKED_ACTIONS = (
    *sorted(WORKER_ACTIONS), *sorted(DLQ_ACTIONS), *sorted(LOG_ACTIONS),
    *sorted(NODE_ACTIONS), "pause", "resume",
    "filter", "sort", "reverse_sort", "clear_filter",
)


class DeckScreen(Screen[None]):
    """Workers, logs, dead letters and history of one orchestrator, steered by keys.

    Args:
        model: what the dashboard knows; the screen shows it.
        controls: what the keys ask for.
        title: shown in the status bar (the config's name).
    """

    BINDINGS = [
        Binding("t", "trigger", "Trigger", tooltip="Run the selected worker once now"),
        Binding("T", "trigger_payload", "Trigger+JSON", key_display="T",
                tooltip="Trigger the selected worker with a JSON payload typed in a dialog"),
        Binding("e", "enable", "Enable", tooltip="Enable the selected worker"),
        Binding("e", "reset_circuit", "Reset circuit",
                tooltip="Reset the open circuit: failures to 0, runs start again"),
        Binding("d", "disable", "Disable",
                tooltip="Disable the selected worker: no runs start, triggers are kept"),
        Binding("p", "pause", "Pause", tooltip="Pause all: no new runs start"),
        Binding("p", "resume", "Resume", tooltip="Resume all workers"),
        Binding("r", "replay", "Replay",
                tooltip="Replay the selected dead letter: a new run with the same payload"),
        Binding("x", "delete", "Delete", tooltip="Delete the selected dead letter (asks first)"),
        Binding("X", "purge", "Purge", key_display="X",
                tooltip="Delete every dead letter (asks first)"),
        Binding("d", "drain", "Drain",
                tooltip="Nodes tab: drain the selected node (asks first): it takes no new "
                        "run, finishes its own, and stays up, idle"),
        Binding("u", "undrain", "Undrain",
                tooltip="Nodes tab: let the selected node take runs again"),
        Binding("slash", "filter", "Filter", key_display="/",
                tooltip="Filter the tab's rows by a name, a state word or any text"),
        Binding("slash", "search", "Search", key_display="/",
                tooltip="Logs tab: search; every match highlighted"),
        Binding("escape", "clear_filter", "Clear filter", key_display="esc",
                tooltip="Clear the tab's filter"),
        Binding("escape", "clear_search", "Clear search", key_display="esc",
                tooltip="Logs tab: clear the search"),
        Binding("s", "sort", "Sort", tooltip="Cycle the sort column (shown in the status bar)"),
        Binding("S", "reverse_sort", "Reverse", key_display="S",
                tooltip="Reverse the sort order (rows with nothing to sort by stay last)"),
        Binding("l", "logs", "Logs", tooltip="Follow the selected worker's logs"),
        Binding("l", "follow", "Follow", tooltip="Logs tab: follow the tail on / off"),
        Binding("a", "log_scope", "All/one",
                tooltip="Logs tab: all workers, or the selected worker only"),
        Binding("L", "log_level", "Level", key_display="L",
                tooltip="Logs tab: lowest level shown: all, INFO, WARNING, ERROR"),
        Binding("n", "next_match", "Next match",
                tooltip="Logs tab: the next line that matches the search"),
        Binding("N", "previous_match", "Prev match", key_display="N",
                tooltip="Logs tab: the previous line that matches the search"),
        Binding("j", "cursor_down", "Down", show=False, tooltip="Move down"),
        Binding("k", "cursor_up", "Up", show=False, tooltip="Move up"),
        Binding("g", "cursor_top", "Top", show=False, tooltip="Go to the first row"),
        Binding("G", "cursor_bottom", "Bottom", show=False, key_display="G",
                tooltip="Go to the last row"),
        Binding("tab", "next_tab", "Next tab", show=False, tooltip="Next tab"),
        Binding("shift+tab", "previous_tab", "Previous tab", show=False,
                tooltip="Previous tab"),
        Binding("1", "show_tab('workers')", "Workers", show=False, tooltip="Workers tab"),
        Binding("2", "show_tab('logs')", "Logs", show=False, tooltip="Logs tab"),
        Binding("3", "show_tab('dlq')", "Dead letters", show=False, tooltip="Dead letters tab"),
        Binding("4", "show_tab('history')", "History", show=False, tooltip="History tab"),
        Binding("5", "show_tab('nodes')", "Nodes", show=False,
                tooltip="Nodes tab (cluster mode): every node, its leases; drain, undrain"),
    ]

    def __init__(self, model: DeckModel, controls: Controls, title: str = "") -> None:
        super().__init__(id="deck")
        self.model = model
        self.controls = controls
        self._title = title
        self._binding_state: tuple[object, ...] | None = None
        #: Whether the orchestrator is a cluster node (the Nodes tab shows then).
        self.cluster_mode = False
        # Events that came before the screen was mounted (the core starts first).
        self._held_events: list[Event] = []

    def compose(self) -> ComposeResult:
        tz = self.model.tz
        yield StatusBar(self._title, id="status")
        yield ClusterBar(id="cluster-bar")
        yield StopBanner(id="stop-banner")
        with TabbedContent(initial="workers", id="tabs"):
            with TabPane(TAB_TITLES["workers"], id="workers"):
                yield FilterBar("workers", id="filter")
                yield WorkerTable(id="worker-table")
                yield ActivityFeed(tz=tz, id="activity")
            with TabPane(TAB_TITLES["logs"], id="logs"):
                yield FilterBar("logs", id="filter-logs")
                yield LogView(tz=tz, id="log-view")
            with TabPane(TAB_TITLES["dlq"], id="dlq"):
                yield FilterBar("dlq", id="filter-dlq")
                yield DeadLetterTable(id="dlq-table")
                yield DeadLetterDetail(tz=tz, id="dlq-detail")
            with TabPane(TAB_TITLES["history"], id="history"):
                yield FilterBar("history", id="filter-history")
                yield HistoryTable(id="history-table")
            with TabPane(TAB_TITLES["nodes"], id="nodes"):
                yield FilterBar("nodes", id="filter-nodes")
                yield NodeTable(id="node-table")
                yield NodeDetail(tz=tz, id="node-detail")
        yield FlashLine(id="flash")
        yield KeyBar()

    def on_mount(self) -> None:
        self.tabs.hide_tab("nodes")  # until a snapshot says this is a cluster node
        self.query_one(FlashLine).show(self.controls.current_flash)
        self.worker_table.focus()
        held, self._held_events = self._held_events, []
        self.activity.add(held)

    # ------------------------------------------------------------------ parts

    @property
    def tabs(self) -> TabbedContent:
        return self.query_one("#tabs", TabbedContent)

    @property
    def active_tab(self) -> str:
        return self.tabs.active or "workers"

    @property
    def worker_table(self) -> WorkerTable:
        return self.query_one("#worker-table", WorkerTable)

    @property
    def filter_bar(self) -> FilterBar:
        """The active tab's filter bar (the Logs tab's searches)."""
        return self.filter_bar_of(self.active_tab)

    def filter_bar_of(self, tab: str) -> FilterBar:
        return self.query_one("#filter" if tab == "workers" else f"#filter-{tab}", FilterBar)

    def filter_text_of(self, tab: str) -> str:
        """What the tab is filtered (or, Logs, searched) by now."""
        if tab == "workers":
            return self.worker_table.filter_text
        if tab == "logs":
            return self.log_view.search
        return self._keyed_table(tab).filter_text

    def _keyed_table(self, tab: str) -> KeyedTable:
        """The table of the dlq, history or nodes tab."""
        tables: dict[str, KeyedTable] = {
            "dlq": self.dlq_table, "history": self.history_table, "nodes": self.node_table,
        }
        return tables[tab]

    @property
    def activity(self) -> ActivityFeed:
        return self.query_one("#activity", ActivityFeed)

    @property
    def log_view(self) -> LogView:
        return self.query_one("#log-view", LogView)

    @property
    def dlq_table(self) -> DeadLetterTable:
        return self.query_one("#dlq-table", DeadLetterTable)

    @property
    def dlq_detail(self) -> DeadLetterDetail:
        return self.query_one("#dlq-detail", DeadLetterDetail)

    @property
    def history_table(self) -> HistoryTable:
        return self.query_one("#history-table", HistoryTable)

    @property
    def node_table(self) -> NodeTable:
        return self.query_one("#node-table", NodeTable)

    @property
    def node_detail(self) -> NodeDetail:
        return self.query_one("#node-detail", NodeDetail)

    @property
    def stop_banner(self) -> StopBanner:
        return self.query_one("#stop-banner", StopBanner)

    @property
    def selected_worker(self) -> WorkerSnapshot | None:
        """The worker under the cursor of the workers table, as of the last snapshot."""
        name = self.worker_table.selected_worker
        return None if name is None else self.model.worker(name)

    @property
    def selected_dead_letter(self) -> DeadLetter | None:
        return self.dlq_table.selected_entry

    @property
    def sort_label(self) -> str:
        """`name ▲`, `last run ▼`, `config order`: the sort as the header shows it."""
        table = self.worker_table
        arrow = sort_arrow(table.sort_by, table.sort_reverse)
        return f"{dict(SORTS)[table.sort_by]} {arrow}".rstrip()

    # ------------------------------------------------------------------ showing

    def show_snapshot(self, snapshot: OrchestratorSnapshot) -> int:
        """Bring the status bar, stop banner and workers table up to date.

        Returns the number of table cells written. The banner shows while stopping, with
        the core's own count of the grace left.
        """
        table = self.worker_table
        written = table.show(snapshot)
        self.show_status(snapshot)
        self.query_one("#cluster-bar", ClusterBar).show(snapshot.cluster)
        if snapshot.cluster is not None:
            if not self.cluster_mode:
                self.cluster_mode = True
                self.tabs.show_tab("nodes")
            nodes_title = f"{TAB_TITLES['nodes']} ({snapshot.cluster.nodes})"
            nodes_tab = self.tabs.get_tab("nodes")
            if str(nodes_tab.label) != nodes_title:
                nodes_tab.label = nodes_title
        if self.model.stopping:
            self.stop_banner.show(
                in_flight=snapshot.running, seconds_left=snapshot.grace_left_s,
                forced=self.model.forced,
            )
        dlq_title = TAB_TITLES["dlq"] + (f" ({snapshot.dlq_size})" if snapshot.dlq_size else "")
        tab = self.tabs.get_tab("dlq")
        if str(tab.label) != dlq_title:
            tab.label = dlq_title
        self.update_bindings()
        return written

    def show_status(self, snapshot: OrchestratorSnapshot) -> None:
        """The status bar, as of `snapshot` (with the sort, and the active tab's filter:
        the Logs tab's search shows in its own title)."""
        tab = self.active_tab
        filter_text, shown, total = "", 0, 0
        if tab == "workers":
            table = self.worker_table
            filter_text, shown, total = table.filter_text, table.shown_count, len(snapshot.workers)
        elif tab in ("dlq", "history", "nodes"):
            keyed = self._keyed_table(tab)
            filter_text, shown, total = keyed.filter_text, keyed.row_count, keyed.total_rows
        self.query_one("#status", StatusBar).show(
            snapshot, sort_label=self.sort_label, filter_text=filter_text, shown=shown,
            total=total,
        )

    def redraw(self) -> None:
        """Show the latest snapshot again after a change of view (sort, filter).

        Reads nothing from the core: the snapshot is at most one tick old.
        """
        if self.model.snapshot is not None:
            with self.app.batch_update():
                self.show_snapshot(self.model.snapshot)

    def show_active_tab(self) -> None:
        """Bring the active tab's own view up to date (the workers table aside)."""
        tab = self.active_tab
        if tab == "workers":
            self.activity.flush()
        elif tab == "logs":
            self.log_view.flush()
        elif tab == "dlq":
            self.show_dead_letters()
        elif tab == "history":
            self.show_history()
        elif tab == "nodes":
            self.show_nodes()

    def show_nodes(self) -> None:
        """The nodes read last, and the selected one in full with its leases."""
        model = self.model
        self.node_table.show(model.cluster_nodes)
        self._show_node_detail()
        self.update_bindings()

    def _show_node_detail(self) -> None:
        model = self.model
        node = self.node_table.selected_node
        leases = [] if node is None else [
            lease for lease in model.cluster_leases if lease.get("node") == node.get("name")
        ]
        self.node_detail.show(node, leases, model.cluster_error, model.cluster_read)

    def show_dead_letters(self) -> None:
        """The dead letters read last, and the selected one in full."""
        now = self.model.clock()
        self.dlq_table.show(self.model.dead_letters, now)
        self.dlq_detail.show(self.dlq_table.selected_entry, now)
        self.update_bindings()

    def show_history(self) -> None:
        """The runs read last."""
        self.history_table.show(self.model.runs, self.model.clock())

    def add_events(self, events: Sequence[Event], logs: Sequence[LogLine]) -> None:
        """New events for the activity feed, and the log lines among them for the Logs
        tab; they show at the next flush. Before the screen is mounted the events are
        held for the feed (the Logs tab reads its lines when it is first shown)."""
        if not self.is_mounted:
            self._held_events.extend(events)
            return
        self.activity.add(events)
        if logs:
            self.log_view.add(logs)

    def show_logs(self, scope: str | None) -> None:
        """Load the Logs tab with the last lines of `scope` (a worker; None: every one)."""
        if not self.is_mounted:
            return
        log_view = self.log_view
        log_view.load(scope, self.model.logs(scope, log_view.max_lines or 1000))

    def follow_logs(self, scope: str | None) -> None:
        """Show the Logs tab on `scope`'s lines, following the tail."""
        self.tabs.active = "logs"
        self.show_logs(scope)
        self.log_view.set_follow(True)
        self.update_bindings()

    def update_bindings(self) -> None:
        """Refresh the footer when what the keys can do has changed.

        Compares the answers of `check_action`, not the selection: moving the cursor
        between two workers that allow the same keys does not redraw the footer.
        """
        state = tuple(self.check_action(action, ()) for action in _CHECKED_ACTIONS)
        if state != self._binding_state:
            self._binding_state = state
            self.refresh_bindings()

    # ------------------------------------------------------------------ keys

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Hide keys that belong to another tab; grey out those the selection rules out."""
        model = self.model
        tab = self.active_tab
        if action in WORKER_ACTIONS or action in ("sort", "reverse_sort"):
            if tab != "workers":
                return False
        if action in DLQ_ACTIONS and tab != "dlq":
            return False
        if action in LOG_ACTIONS and tab != "logs":
            return False
        if action in NODE_ACTIONS and tab != "nodes":
            return False
        if action in ("filter", "clear_filter") and tab == "logs":
            return False  # the Logs tab searches instead
        if action in ("clear_filter", "clear_search"):
            return self.filter_text_of(tab) != "" or self.filter_bar.is_open
        if action in ("next_match", "previous_match"):
            return True if self.log_view.match_count else (None if self.log_view.search else False)
        snapshot = model.snapshot
        paused = snapshot is not None and snapshot.state == OrchestratorState.PAUSED
        if action == "pause":
            return None if model.stopping else (True if not paused else False)
        if action == "resume":
            return (None if model.stopping else True) if paused else False
        if action in WORKER_ACTIONS:
            worker = self.selected_worker
            if worker is None:
                return None if action != "reset_circuit" else False
            allowed = worker_key(action, worker)
            if allowed and action in CONTROL_ACTIONS and not model.may_control:
                return None
            return allowed
        if action in CONTROL_ACTIONS and not model.may_control:
            return None
        if action in ("replay", "delete"):
            return True if self.selected_dead_letter is not None else None
        if action == "purge":
            return True if self.dlq_table.row_count > 0 else None
        if action in NODE_ACTIONS:
            node = self.node_table.selected_node
            if node is None:
                return None
            draining = node.get("state") == "draining"
            return draining if action == "undrain" else (None if draining else True)
        return True

    def action_trigger(self) -> None:
        if (worker := self.selected_worker) is not None:
            self.controls.trigger_worker(worker.name)

    def action_trigger_payload(self) -> None:
        if (worker := self.selected_worker) is not None:
            self.controls.ask_payload(worker.name)

    def action_enable(self) -> None:
        if (worker := self.selected_worker) is not None:
            self.controls.enable_worker(worker.name)

    def action_reset_circuit(self) -> None:
        self.action_enable()  # enabling closes an open circuit

    def action_disable(self) -> None:
        if (worker := self.selected_worker) is not None:
            self.controls.disable_worker(worker.name)

    def action_pause(self) -> None:
        self.controls.pause_all()

    def action_resume(self) -> None:
        self.controls.resume_all()

    def action_replay(self) -> None:
        if (entry := self.selected_dead_letter) is not None:
            self.controls.replay(entry)

    def action_delete(self) -> None:
        if (entry := self.selected_dead_letter) is not None:
            self.controls.ask_delete(entry)

    def action_purge(self) -> None:
        self.controls.ask_purge()

    def action_drain(self) -> None:
        if (node := self.node_table.selected_node) is not None:
            self.controls.ask_drain(str(node.get("name")))

    def action_undrain(self) -> None:
        if (node := self.node_table.selected_node) is not None:
            self.controls.undrain(str(node.get("name")))

    def action_filter(self) -> None:
        bar = self.filter_bar
        bar.open()
        bar.value = self.filter_text_of(self.active_tab)
        self.update_bindings()

    def action_search(self) -> None:
        self.action_filter()

    def action_clear_search(self) -> None:
        self.action_clear_filter()

    def action_clear_filter(self) -> None:
        tab = self.active_tab
        self.filter_bar.close()
        self._apply_filter(tab, "")
        self._focus_tab(tab)
        self.update_bindings()

    def _apply_filter(self, tab: str, text: str) -> None:
        """Filter (Logs: search) the tab's rows by `text`, and show it at once."""
        if tab == "workers":
            self.worker_table.set_filter(text)
            self.redraw()
        elif tab == "logs":
            self.log_view.set_search(text)
        elif tab == "dlq":
            self.dlq_table.filter_text = text
            self.show_dead_letters()
        elif tab == "history":
            self.history_table.filter_text = text
            self.show_history()
        elif tab == "nodes":
            self.node_table.filter_text = text
            self.show_nodes()
        if self.model.snapshot is not None:
            self.show_status(self.model.snapshot)

    def action_sort(self) -> None:
        keys = [key for key, _ in SORTS]
        table = self.worker_table
        # The snapshot shown is at most one tick old: re-sort it rather than read anew.
        table.set_sort(keys[(keys.index(table.sort_by) + 1) % len(keys)])
        self.redraw()
        self.controls.flash(f"Sorted by {self.sort_label}")

    def action_reverse_sort(self) -> None:
        table = self.worker_table
        table.set_sort(table.sort_by, not table.sort_reverse)
        self.redraw()
        self.controls.flash(f"Sorted by {self.sort_label}")

    def action_logs(self) -> None:
        if (worker := self.selected_worker) is not None:
            self.controls.follow_logs(worker.name)

    def action_follow(self) -> None:
        log = self.log_view
        log.set_follow(not log.follow)
        self.update_bindings()

    def action_log_level(self) -> None:
        log = self.log_view
        level = LOG_LEVELS[(LOG_LEVELS.index(log.level) + 1) % len(LOG_LEVELS)]
        log.set_level(level)
        self.controls.flash("Logs: every level" if level is None
                            else f"Logs: {level} and above")
        self.update_bindings()

    def action_next_match(self) -> None:
        self._move_to_match(forward=True)

    def action_previous_match(self) -> None:
        self._move_to_match(forward=False)

    def _move_to_match(self, *, forward: bool) -> None:
        log = self.log_view
        if not log.next_match(forward):
            self.controls.flash(f"No line matches {log.search!r}", "warning")
        self.update_bindings()

    def action_log_scope(self) -> None:
        log = self.log_view
        if log.scope is None:
            name = self.worker_table.selected_worker
            if name is None:
                self.controls.flash("Select a worker on the Workers tab first", "warning")
                return
            self.show_logs(name)
        else:
            self.show_logs(None)
        self.update_bindings()

    def _active_table(self) -> KeyedTable | WorkerTable | None:
        tables: dict[str, KeyedTable | WorkerTable] = {
            "workers": self.worker_table,
            "dlq": self.dlq_table,
            "history": self.history_table,
            "nodes": self.node_table,
        }
        return tables.get(self.active_tab)

    def action_cursor_down(self) -> None:
        if (table := self._active_table()) is not None:
            table.action_cursor_down()
        else:
            self.log_view.scroll_down(animate=False)

    def action_cursor_up(self) -> None:
        if (table := self._active_table()) is not None:
            table.action_cursor_up()
        else:
            self.log_view.scroll_up(animate=False)

    def action_cursor_top(self) -> None:
        if (table := self._active_table()) is not None:
            table.move_cursor(row=0, animate=False)
        else:
            self.log_view.scroll_home(animate=False)

    def action_cursor_bottom(self) -> None:
        if (table := self._active_table()) is not None:
            table.move_cursor(row=max(0, table.row_count - 1), animate=False)
        else:
            self.log_view.scroll_end(animate=False)

    def action_show_tab(self, tab: str) -> None:
        if tab == "nodes" and not self.cluster_mode:
            self.controls.flash(SINGLE_NODE)
            return
        self.tabs.active = tab

    @property
    def shown_tabs(self) -> tuple[str, ...]:
        """The tabs there are: the Nodes tab in cluster mode only."""
        return TABS if self.cluster_mode else TABS[:-1]

    def action_next_tab(self) -> None:
        tabs = self.shown_tabs
        self.tabs.active = tabs[(tabs.index(self.active_tab) + 1) % len(tabs)]

    def action_previous_tab(self) -> None:
        tabs = self.shown_tabs
        self.tabs.active = tabs[(tabs.index(self.active_tab) - 1) % len(tabs)]

    # ------------------------------------------------------------------ messages

    def _focus_tab(self, tab: str) -> None:
        """Focus what the tab is for: its table, or the logs."""
        focus = {
            "workers": self.worker_table,
            "logs": self.log_view,
            "dlq": self.dlq_table,
            "history": self.history_table,
            "nodes": self.node_table,
        }.get(tab)
        if focus is not None:
            focus.focus()

    @on(TabbedContent.TabActivated)
    def _tab_activated(self, event: TabbedContent.TabActivated) -> None:
        # A `/` typed right after the tab's key has opened its filter bar: typing goes there.
        if not (isinstance(self.focused, FilterBar) and self.focused.tab == self.active_tab):
            self._focus_tab(self.active_tab)
        self.controls.tab_shown(self.active_tab)
        self.update_bindings()

    @on(Input.Changed, "FilterBar")
    def _filter_changed(self, event: Input.Changed) -> None:
        bar = event.input
        if isinstance(bar, FilterBar) and bar.is_open:
            self._apply_filter(bar.tab, event.value)

    @on(Input.Submitted, "FilterBar")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        bar = event.input
        if not isinstance(bar, FilterBar):
            return
        if not event.value.strip():
            bar.close()
        self._focus_tab(bar.tab)
        if bar.tab == "logs" and event.value.strip():
            self._move_to_match(forward=False)  # the newest match, from the bottom
        self.update_bindings()

    @on(DataTable.RowHighlighted)
    def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table is self.dlq_table:
            self.dlq_detail.show(self.dlq_table.selected_entry, self.model.clock())
        elif event.data_table is self.node_table:
            self._show_node_detail()
        self.update_bindings()

    @on(WorkerTable.Highlighted)
    def _worker_highlighted(self, event: WorkerTable.Highlighted) -> None:
        self.update_bindings()

    @on(WorkerTable.Selected)
    def _worker_selected(self, event: WorkerTable.Selected) -> None:
        self.controls.open_detail(event.key)

    @on(DataTable.RowSelected, "#history-table")
    def _run_selected(self, event: DataTable.RowSelected) -> None:
        run_id = self.history_table.selected_key
        if run_id is not None:
            self.controls.open_run(run_id)

    @on(DataTable.RowSelected, "#dlq-table")
    def _dead_letter_selected(self, event: DataTable.RowSelected) -> None:
        entry = self.dlq_table.selected_entry
        if entry is not None:
            self.controls.open_dead_letter(entry)
