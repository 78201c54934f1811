"""The text log format for people: exact lines (golden), colour rules, the status line."""

from __future__ import annotations

import io
import json
import os
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
import trio

import jobdeck
from jobdeck import (
    AttemptFailed,
    DeadLettered,
    Event,
    HealthChanged,
    LogLine,
    OrchestratorSnapshot,
    OrchestratorStarted,
    OrchestratorStopped,
    OrchestratorStopping,
    RunFailed,
    RunInterrupted,
    RunStarted,
    RunSucceeded,
    TriggerAccepted,
    WorkerDisabled,
)
from jobdeck._logformat import json_line, one_line, status_line, text_line, use_colour

T0 = datetime(2026, 1, 1, 12, 0, 5, tzinfo=UTC)
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def at(ms: int) -> datetime:
    return T0 + timedelta(milliseconds=ms)


RUN = {"run_id": "r1", "trigger_id": "a1", "source": "manual"}

EVENTS: list[Event] = [
    OrchestratorStarted(ts=at(0), workers=3, max_concurrent_workers=5, http="127.0.0.1:8765"),
    TriggerAccepted(ts=at(1), worker="fetch", trigger_id="a1", source="manual",
                    payload={"day": 3}),
    RunStarted(ts=at(2), worker="fetch", attempt=1, payload={"day": 3}, **RUN),
    LogLine(ts=at(10), worker="fetch", run_id="r1", level="INFO", message="fetched 42 rows"),
    AttemptFailed(ts=at(20), worker="fetch", attempt=1, duration_s=0.0181,
                  error="ConnectionError: reset by peer", will_retry=True, retry_in_s=1.5, **RUN),
    RunSucceeded(ts=at(1500), worker="fetch", attempt=2, duration_s=1.4981, **RUN),
    RunFailed(ts=at(2000), worker="export", run_id="r2", trigger_id="a2", source="schedule",
              attempt=4, duration_s=12.5, error="ValueError: bad row"),
    DeadLettered(ts=at(2001), worker="export", run_id="r2", trigger_id="a2", source="schedule",
                 attempt=4, dlq_id=7, error="ValueError: bad row"),
    WorkerDisabled(ts=at(2002), worker="export", reason="circuit open after 5 failures"),
    HealthChanged(ts=at(3000), worker=None, health="failing", previous="ok",
                  reasons=("export: failing",)),
    LogLine(ts=at(3001), worker="a-rather-long-worker-name", run_id=None, level="WARNING",
            message="disk 91% full"),
    OrchestratorStopping(ts=at(4000), in_flight=1, grace_s=30.0),
    RunInterrupted(ts=at(4001), worker="fetch", run_id="r3", trigger_id="a3",
                   source="continuous", attempt=1, reason="shutdown"),
    OrchestratorStopped(ts=at(4002), interrupted=1, stuck=0),
]

GOLDEN = """\
12:00:05.000  orchestrator_started                     workers=3 max_concurrent_workers=5 http=127.0.0.1:8765
12:00:05.001  trigger_accepted      fetch              trigger_id=a1 source=manual payload={"day": 3}
12:00:05.002  run_started           fetch              run_id=r1 trigger_id=a1 source=manual attempt=1 payload={"day": 3}
12:00:05.010  log                   fetch              INFO    fetched 42 rows
12:00:05.020  attempt_failed        fetch              run_id=r1 trigger_id=a1 source=manual attempt=1 duration_s=0.018 error="ConnectionError: reset by peer" will_retry=true retry_in_s=1.500
12:00:06.500  run_succeeded         fetch              run_id=r1 trigger_id=a1 source=manual attempt=2 duration_s=1.498
12:00:07.000  run_failed            export             run_id=r2 trigger_id=a2 source=schedule attempt=4 duration_s=12.500 error="ValueError: bad row"
12:00:07.001  dead_lettered         export             run_id=r2 trigger_id=a2 source=schedule attempt=4 dlq_id=7 error="ValueError: bad row"
12:00:07.002  worker_disabled       export             reason="circuit open after 5 failures"
12:00:08.000  health_changed                           health=failing previous=ok reasons=["export: failing"]
12:00:08.001  log                   a-rather-long-worker-name WARNING disk 91% full
12:00:09.000  orchestrator_stopping                    in_flight=1 grace_s=30.000
12:00:09.001  run_interrupted       fetch              run_id=r3 trigger_id=a3 source=continuous attempt=1 reason=shutdown
12:00:09.002  orchestrator_stopped                     interrupted=1 stuck=0
"""  # noqa: E501


def snapshot(**changes: object) -> OrchestratorSnapshot:
    fields: dict[str, object] = {
        "state": "running", "health": "ok", "health_reasons": (), "running": 2,
        "max_concurrent_workers": 5, "pending": 3, "dlq_size": 1, "started_at": T0,
        "uptime_s": 60.0, "loop_lag_s": 0.001, "events_published": 10, "events_dropped": 0,
        "store_errors": 0, "log_lines_dropped": 0, "grace_left_s": None,
        "taken_at": at(60_000), "workers": (),
    }
    fields.update(changes)
    return OrchestratorSnapshot(**fields)  # type: ignore[arg-type]


def test_golden_lines_without_colour() -> None:
    """Fixed events give exactly these aligned lines when colour is off."""
    assert "".join(text_line(e) + "\n" for e in EVENTS) == GOLDEN


def test_colour_only_adds_escape_codes() -> None:
    """With colour on, the lines are the same text plus ANSI codes (alignment kept)."""
    coloured = [text_line(e, colour=True) for e in EVENTS]
    assert [ANSI.sub("", line) for line in coloured] == GOLDEN.splitlines()
    assert "\x1b[32mrun_succeeded\x1b[0m" in coloured[5]
    assert "\x1b[31mrun_failed\x1b[0m" in coloured[6]
    assert "\x1b[33mWARNING\x1b[0m" in coloured[10]
    assert "health=\x1b[31mfailing\x1b[0m" in coloured[9]


def test_time_has_milliseconds_even_on_a_whole_second() -> None:
    """A timestamp with no fraction still shows `.000` (ISO strings would drop it)."""
    line = text_line(OrchestratorStopped(ts=T0, interrupted=0, stuck=0))
    assert line.startswith("12:00:05.000  orchestrator_stopped ")


def test_time_is_utc() -> None:
    """Timestamps in another zone are shown in UTC, like the JSON logs."""
    cet = T0.astimezone(timezone(timedelta(hours=1)))
    assert text_line(OrchestratorStopped(ts=cet, interrupted=0, stuck=0)).startswith("12:00:05")


def test_status_line() -> None:
    """The status line: running n/max, pending, DLQ and health."""
    assert status_line(snapshot()) == (
        "12:01:05.000  status                                   "
        "running=2/5 pending=3 dlq=1 health=ok"
    )


def test_status_line_says_state_and_reasons_when_not_fine() -> None:
    """A paused, unhealthy orchestrator's status line says so, and why."""
    line = status_line(
        snapshot(state="paused", health="failing", health_reasons=("export: failing",))
    )
    assert line.endswith(
        'health=failing state=paused reasons=["export: failing"]'
    )


def test_status_line_counts_log_lines_dropped_only_when_some_were() -> None:
    """Log lines that fell out of the ring buffers show as `log_lines_dropped=n`, if any."""
    line = status_line(snapshot(state="paused", log_lines_dropped=1234))
    assert line.endswith("health=ok state=paused log_lines_dropped=1234")
    assert "log_lines_dropped" not in status_line(snapshot())


def test_status_line_colours_health() -> None:
    """With colour, the health word is green when ok and red when failing."""
    assert "health=\x1b[32mok\x1b[0m" in status_line(snapshot(), colour=True)
    assert "\x1b[31mfailing" in status_line(snapshot(health="failing"), colour=True)


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("ValueError: bad row", 60, "ValueError: bad row"),
        ("  KeyError: 'x'\nTraceback (most recent call last):\n", 60, "KeyError: 'x'"),
        ("ValueError: " + "x" * 20, 12, "ValueError:…"),
        ("", 10, ""),
        (None, 10, ""),
    ],
)
def test_one_line(text: str | None, limit: int, expected: str) -> None:
    """A text's first line, stripped and cut to the limit with an ellipsis."""
    assert one_line(text, limit) == expected
    assert len(one_line(text, limit)) <= limit


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("stream", "env", "expected"),
    [
        (Terminal(), {}, True),
        (io.StringIO(), {}, False),
        (Terminal(), {"NO_COLOR": "1"}, False),
        (Terminal(), {"NO_COLOR": ""}, True),  # no-color.org: only a non-empty value counts
        (Terminal(), {"TERM": "dumb"}, False),
    ],
)
def test_use_colour(stream: io.StringIO, env: dict[str, str], expected: bool) -> None:
    """Colour only on a terminal, never with NO_COLOR set or TERM=dumb."""
    assert use_colour(stream, env) is expected


def test_use_colour_on_a_closed_stream_is_false() -> None:
    """A closed stream is not a terminal (no exception)."""
    stream = io.StringIO()
    stream.close()
    assert use_colour(stream, {}) is False


def test_line_writer_escapes_what_the_stream_cannot_encode_and_goes_on() -> None:
    """A line the stream's encoding refuses (a lone surrogate, or any non-ASCII on an
    ASCII stream) is written escaped; the next lines still come (it is not a closed pipe)."""
    import io

    from jobdeck._headless import _LineWriter

    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="ascii")
    writer = _LineWriter(stream, formatter=str)
    writer.write_line("caf\udce9 and caf\u00e9")
    writer.write_line("next line")
    stream.flush()
    assert raw.getvalue().decode("ascii").splitlines() == [
        "caf\\udce9 and caf\\xe9",
        "next line",
    ]


def test_text_shows_short_ids_json_keeps_them_whole() -> None:
    """Run and trigger ids are cut to 8 characters in text; JSON has the whole ids."""
    event = RunStarted(ts=T0, worker="w", run_id="0000002a1b2c3d4e", trigger_id="00000029ffeeddcc",
                       source="manual", attempt=1)
    line = text_line(event)
    assert "run_id=0000002a " in line and "trigger_id=00000029 " in line
    assert "1b2c3d4e" not in line
    whole = json.loads(json_line(event))
    assert (whole["run_id"], whole["trigger_id"]) == ("0000002a1b2c3d4e", "00000029ffeeddcc")


def test_text_shows_a_logged_traceback_with_the_workers_frames_only() -> None:
    """jobdeck's and trio's frames are left out of a traceback in a log line (text only)."""
    jobdeck_file = os.path.join(os.path.dirname(jobdeck.__file__), "_runs.py")
    trio_file = os.path.join(os.path.dirname(trio.__file__), "_threads.py")
    message = (
        "it broke\nTraceback (most recent call last):\n"
        f'  File "{jobdeck_file}", line 74, in run_attempt\n'
        "    await trio.to_thread.run_sync(w.fn, ctx)\n"
        f'  File "{trio_file}", line 392, in worker_fn\n'
        "    ret = context.run(sync_fn, *args)\n"
        "          ^^^^^^^^^^^^^^^^^^^^^^^^^^^\n"
        '  File "/srv/app/jobs.py", line 9, in export\n'
        "    open(path)\n"
        "PermissionError: denied"
    )
    line = text_line(LogLine(ts=T0, worker="w", run_id="r", level="ERROR", message=message))
    assert '  File "/srv/app/jobs.py", line 9, in export\n    open(path)\nPermissionError' in line
    assert "_runs.py" not in line and "_threads.py" not in line and "^^^" not in line
    assert "context.run" not in line
    assert json.loads(json_line(LogLine(ts=T0, worker="w", run_id="r", level="ERROR",
                                        message=message)))["message"] == message
