"""How cells read: pure functions of snapshots and a "now", no app needed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import attrs

from jobdeck import (
    Circuit,
    ClusterSnapshot,
    Health,
    OrchestratorSnapshot,
    OrchestratorState,
    WorkerSnapshot,
    WorkerSpec,
    WorkerStatus,
)
from jobdeck.tui._cells import (
    ago,
    cluster_line,
    display_state,
    matches,
    order_workers,
    seconds_text,
    short_traceback,
    sparkline,
    spec_seconds,
    status_line,
    until,
    worker_columns,
    worker_row,
)

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def snapshot(**changes: object) -> WorkerSnapshot:
    base = WorkerSnapshot(
        name="fetch", spec=WorkerSpec(name="fetch"), fn="m:f", state=WorkerStatus.IDLE,
        reason="next in 42s", health=Health.OK, health_reasons=(), enabled=True,
        circuit=Circuit.CLOSED, may_run=True,
        consecutive_failures=0, attempt=None, max_attempts=4, runs_ok=3, runs_failed=0,
        pending=0, last_start=NOW - timedelta(seconds=12), last_success=NOW,
        last_error=None, last_traceback=None, last_duration_s=1.5, durations=(1.0, 2.0),
        next_due=NOW + timedelta(seconds=42), running_since=None, run_id=None,
    )
    return attrs.evolve(base, **changes)


def orchestrator(**changes: object) -> OrchestratorSnapshot:
    base = OrchestratorSnapshot(
        state=OrchestratorState.RUNNING, health=Health.OK, health_reasons=(), running=1,
        max_concurrent_workers=5, pending=0, dlq_size=2, started_at=NOW, uptime_s=75.0,
        loop_lag_s=0.0, events_published=10, events_dropped=0, store_errors=0,
        log_lines_dropped=0, grace_left_s=None, taken_at=NOW, workers=(snapshot(),),
    )
    return attrs.evolve(base, **changes)


def header(snapshot: OrchestratorSnapshot) -> str:
    return status_line(snapshot, title="t", sort_label="name", filter_text="", shown=1).plain


def test_status_line_shows_log_lines_dropped_only_when_some_were() -> None:
    """`log 123 dropped` follows the DLQ count when log lines fell out of the buffers."""
    assert "dropped" not in header(orchestrator())
    text = header(orchestrator(log_lines_dropped=123))
    assert "DLQ 2  │  log 123 dropped  │  up 1m 15s" in text


def test_sparkline_scales_between_min_and_max() -> None:
    """Durations draw as bars from ▁ (shortest) to █ (longest)."""
    assert sparkline([1, 2, 3, 4, 5, 6, 7, 8]) == "▁▂▃▄▅▆▇█"


def test_sparkline_of_equal_values_is_flat_and_keeps_the_last_ones() -> None:
    """A steady worker draws a flat line; only the last `width` values show."""
    assert sparkline([2.0, 2.0, 2.0]) == "▄▄▄"
    assert sparkline(list(range(20)), width=4) == "▁▃▆█"
    assert sparkline([]) == ""


def test_relative_times_are_short() -> None:
    """`12s ago`, `4m ago`, `in 42s`, `in 4m 05s`, `now`, `never`-as-empty."""
    assert ago(NOW - timedelta(seconds=12.7), NOW) == "12s ago"
    assert ago(NOW - timedelta(minutes=4, seconds=59), NOW) == "4m ago"
    assert ago(NOW - timedelta(hours=3), NOW) == "3h ago"
    assert ago(None, NOW) == ""
    assert until(NOW + timedelta(seconds=41.2), NOW) == "in 42s"
    assert until(NOW + timedelta(seconds=245), NOW) == "in 4m 05s"
    assert until(NOW - timedelta(seconds=1), NOW) == "now"


def test_durations_read_like_people_write_them() -> None:
    """Cells: `0.42s`, `1.5s`, `12s`, `4m 05s`; spec values as configured: `0.5s`, `60s`."""
    assert [seconds_text(s) for s in (0.42, 1.5, 12.9, 245)] == ["0.42s", "1.5s", "12s", "4m 05s"]
    assert [spec_seconds(s) for s in (0.5, 60, 3600)] == ["0.5s", "60s", "1h 00m"]


def test_display_state_sharpens_idle_workers_with_their_health() -> None:
    """Running/retrying/disabled/stuck show as such; an idle worker shows its health."""
    running = snapshot(state=WorkerStatus.RUNNING)
    assert display_state(running) is WorkerStatus.RUNNING
    disabled = snapshot(state=WorkerStatus.DISABLED, health=Health.DISABLED, may_run=False)
    assert display_state(disabled) is WorkerStatus.DISABLED
    assert display_state(snapshot(health=Health.FAILING)) is Health.FAILING
    assert display_state(snapshot(state=WorkerStatus.WAITING)) is WorkerStatus.WAITING
    assert display_state(snapshot()) is Health.OK


def test_filter_matches_a_name_fragment_or_a_state_word() -> None:
    """`etc` keeps fetch; `failing` keeps failing workers; other words do not."""
    assert matches(snapshot(), "ETC")
    assert matches(snapshot(health=Health.FAILING), "failing")
    assert not matches(snapshot(), "failing")
    assert matches(snapshot(), "  ")


def names(workers: list[WorkerSnapshot]) -> list[str]:
    return [worker.name for worker in workers]


def test_sorts_put_what_needs_a_person_first() -> None:
    """State sort ranks stuck and failing before ok; failures sort most first."""
    ok, stuck = snapshot(name="ok"), snapshot(name="stuck", state=WorkerStatus.STUCK)
    many = snapshot(name="many", consecutive_failures=4)
    assert names(order_workers([ok, stuck], "state", False)) == ["stuck", "ok"]
    assert names(order_workers([ok, many], "failures", False)) == ["many", "ok"]
    assert names(order_workers([ok, many], "config", False)) == ["ok", "many"]


def test_an_open_circuit_reads_circuit_open_and_tells_what_resets_it() -> None:
    """Not "disabled": state `circuit open`, why says `e resets`, next run says the trial."""
    open_circuit = snapshot(
        state=WorkerStatus.CIRCUIT_OPEN, enabled=True, circuit=Circuit.OPEN, may_run=False,
        health=Health.DISABLED, consecutive_failures=3,
        reason="disabled: circuit open after 3 failures, trial run in 50s",
    )
    row = worker_row(open_circuit, NOW)
    assert row["state"] == ("circuit open", "bold reverse red")
    assert row["why"][0] == "e resets · trial run in 50s · after 3 failures"
    assert row["next"][0] == "trial 50s"
    no_cooldown = attrs.evolve(open_circuit, reason="disabled: circuit open after 3 failures")
    assert worker_row(no_cooldown, NOW)["next"][0] == "—"
    disabled = snapshot(state=WorkerStatus.DISABLED, enabled=False, may_run=False,
                        reason="disabled")
    assert worker_row(disabled, NOW)["state"][0] == "disabled"
    assert worker_row(disabled, NOW)["why"][0] == "by an operator — e enables"


def test_short_traceback_drops_import_path_prefixes() -> None:
    """File paths under an import root read relative to it; others stay as they are."""
    import trio

    trio_file = trio.__file__
    text = f'  File "{trio_file}", line 1, in x\n  File "/nowhere/else.py", line 2'
    short = short_traceback(text, whole=True)
    assert 'File "trio/__init__.py", line 1' in short
    assert 'File "/nowhere/else.py"' in short


def _cluster(**changes: object) -> ClusterSnapshot:
    fields: dict[str, object] = {
        "node": "n2", "store": "pg://db.example/jobs", "nodes": 3, "slots_used": 7,
        "slots_max": 20, "node_used": 3, "node_capacity": 8, "node_state": "active",
        "listener_ok": True,
    }
    fields.update(changes)
    return ClusterSnapshot(**fields)  # type: ignore[arg-type]


def test_cluster_line_says_it_all_when_there_is_room() -> None:
    """The widest cluster line: database, nodes, cluster slots, this node, listener."""
    assert cluster_line(_cluster()).plain == (
        " cluster pg://db.example/jobs · 3 nodes · 7/20 slots · this node n2 3/8 · listener ok"
    )


def test_cluster_line_shortens_labels_before_it_cuts() -> None:
    """Narrower: labels go, then the database; counts, this node and the listener stay."""
    widths = {}
    for width in (80, 60, 40, 20):
        text = cluster_line(_cluster(), width)
        assert text.cell_len <= width
        widths[width] = text.plain
    assert widths[80] == " pg://db.example/jobs · 3 nodes · 7/20 slots · n2 3/8 · listener ok"
    assert widths[60] == " pg://db.example/jobs 3n 7/20 run n2 3/8 listening"
    assert widths[40] == " 3n 7/20 run n2 3/8 listening"
    assert widths[20].endswith("…")


def test_cluster_line_says_what_is_wrong() -> None:
    """A drained or fenced node says so beside its name; a dead listener is red."""
    text = cluster_line(_cluster(node_state="draining", listener_ok=False, nodes=1))
    assert "this node n2 draining 3/8" in text.plain
    assert "1 node ·" in text.plain
    assert text.plain.endswith("listener down")
    assert any(span.style == "bold red" for span in text.spans)


def test_worker_columns_add_a_node_column_in_cluster_mode_only() -> None:
    """The node column fits the longest node name and is the first to show; none
    in local mode."""
    local = [key for key, _, _ in worker_columns(["alpha"], 140, 2)]
    assert "node" not in local
    cluster = worker_columns(["alpha"], 140, 2, ["n1", "worker-host-7"])
    assert [key for key, _, _ in cluster][:4] == ["name", "state", "node", "why"]
    assert dict((key, width) for key, _, width in cluster)["node"] == len("worker-host-7")
    narrow = [key for key, _, _ in worker_columns(["alpha"], 80, 2, ["n1"])]
    assert "node" in narrow


def test_cluster_line_says_when_the_database_stopped_answering() -> None:
    """No read for longer than a few polls: the line says how old it is, in red, instead
    of a listener state it can no longer vouch for."""
    text = cluster_line(_cluster(read_age_s=12.4))
    assert text.plain.endswith("no read for 12s")
    assert "listener" not in text.plain
    assert cluster_line(_cluster(read_age_s=1.2)).plain.endswith("listener ok")
