"""The HTTP API: every endpoint and status code, against a running orchestrator.

Most tests call the ASGI app in-process (a few lines of scope/receive/send below, no
client library) in virtual time; the `real socket` tests serve it with hypercorn on
127.0.0.1 port 0 and talk to it with urllib from a thread, on the real clock.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
import trio.lowlevel
import trio.testing
from prometheus_client.parser import text_string_to_metric_families

from jobdeck import (
    DeadLetterDraft,
    JobContext,
    MemoryStore,
    Orchestrator,
    RunRecord,
    RunStatus,
    Source,
    SQLiteStore,
    Trigger,
    WorkerState,
    load_config,
)
from jobdeck._api_token import shared_token, token_file_for, token_from_env, write_token_file
from jobdeck._http_app import MAX_BODY_BYTES, create_app
from jobdeck._http_server import ApiServer, HttpApiError, format_address, parse_address
from jobdeck._metrics import Metrics
from tests.core.conftest import make_orchestrator, virtual_wall_clock

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


# ---------------------------------------------------------------------- ASGI client


@attrs.frozen
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    #: What the app raised after answering (starlette re-raises after a 500).
    raised: BaseException | None = None

    def json(self) -> Any:
        assert self.headers["content-type"].startswith("application/json"), self.headers
        return json.loads(self.body)


async def call(
    app: Any,
    method: str,
    path: str,
    *,
    body: bytes | list[bytes] = b"",
    headers: dict[str, str] | None = None,
) -> Reply:
    """One HTTP request straight into the ASGI app. A list body arrives in chunks."""
    path, _, query = path.partition("?")
    chunks = body if isinstance(body, list) else [body]
    messages = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8765),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    raised = None
    try:
        await app(scope, receive, send)
    except Exception as exc:
        if not sent:
            raise
        raised = exc
    start = sent[0]
    assert start["type"] == "http.response.start"
    return Reply(
        status=start["status"],
        headers={k.decode(): v.decode() for k, v in start["headers"]},
        body=b"".join(m.get("body", b"") for m in sent[1:]),
        raised=raised,
    )


# ---------------------------------------------------------------------- fixtures


@attrs.define
class Recorder:
    payloads: list[Any] = attrs.field(factory=list)

    async def echo(self, ctx: JobContext) -> None:
        self.payloads.append(ctx.payload)


async def boom(ctx: JobContext) -> None:
    raise RuntimeError("boom")


def orchestrator(recorder: Recorder | None = None, **config: Any) -> Orchestrator:
    orch = make_orchestrator(**config)
    orch.register("echo", (recorder or Recorder()).echo, mode="triggered")
    orch.register("boom", boom, mode="triggered", max_retries=0)
    return orch


@asynccontextmanager
async def serving(orch: Orchestrator, **options: Any) -> AsyncIterator[Any]:
    """The API app of `orch`, with the orchestrator and the metrics running."""
    metrics = Metrics(orch, process=False)
    app = create_app(orch, token=TOKEN, metrics=metrics, **options)
    async with trio.open_nursery() as nursery:
        await nursery.start(metrics.run)
        await nursery.start(orch.run)
        try:
            yield app
        finally:
            orch.stop(grace=0)


async def wait_until(orch: Orchestrator, predicate: Callable[[], bool]) -> None:
    """Wait until `predicate()` holds, looking again after each event of `orch`."""
    with trio.fail_after(60), orch.subscribe() as events:
        while not predicate():
            await events.receive.receive()


async def dead_letter(app: Any, orch: Orchestrator) -> int:
    """Make `boom` fail once; returns its DLQ entry's id."""
    before = orch.snapshot().dlq_size
    assert (await call(app, "POST", "/workers/boom/trigger", headers=AUTH)).status == 202
    await wait_until(orch, lambda: orch.snapshot().dlq_size == before + 1)
    entries = (await call(app, "GET", "/dlq")).json()["entries"]
    return int(entries[0]["id"])


# ---------------------------------------------------------------------- health & status


async def test_healthz_is_200_with_health_when_ok(autojump_clock: Any) -> None:
    """/healthz answers 200 with `ok` and no reasons on a healthy orchestrator."""
    async with serving(orchestrator()) as app:
        reply = await call(app, "GET", "/healthz")
    assert reply.status == 200
    assert reply.json() == {"health": "ok", "state": "running", "reasons": [], "workers": {}}


async def test_healthz_is_503_with_reasons_when_failing(autojump_clock: Any) -> None:
    """/healthz answers 503 and names the failing worker once the health monitor sees it."""
    orch = orchestrator()
    async with serving(orch) as app:
        for _ in range(3):  # failing at half of max_consecutive_failures (5)
            await dead_letter(app, orch)
        await wait_until(orch, lambda: orch.snapshot().health not in ("ok", "degraded"))
        reply = await call(app, "GET", "/healthz")
    assert reply.status == 503
    body = reply.json()
    assert body["health"] == "failing"
    assert body["reasons"] == ["boom: failing"]
    assert body["workers"]["boom"]["health"] == "failing"
    assert "failed runs in a row" in body["workers"]["boom"]["reasons"][0]


async def test_healthz_is_503_once_stopped(autojump_clock: Any) -> None:
    """A stopped orchestrator is not ready: /healthz answers 503 and says why."""
    orch = orchestrator()
    async with serving(orch) as app:
        pass
    await orch.wait_stopped()
    reply = await call(app, "GET", "/healthz")
    assert reply.status == 503
    assert reply.json()["reasons"][0] == "orchestrator is stopped"


async def test_healthz_is_200_while_paused(autojump_clock: Any) -> None:
    """Pausing is an operator's choice, not a fault: /healthz stays 200."""
    orch = orchestrator()
    async with serving(orch) as app:
        orch.pause()
        reply = await call(app, "GET", "/healthz")
    assert reply.status == 200
    assert reply.json()["state"] == "paused"


async def test_livez_is_200(autojump_clock: Any) -> None:
    """/livez answers 200 whenever the process answers at all."""
    async with serving(orchestrator()) as app:
        reply = await call(app, "GET", "/livez")
    assert (reply.status, reply.json()) == (200, {"alive": True})


async def test_status_lists_every_worker_with_state_and_reason(autojump_clock: Any) -> None:
    """/status has the orchestrator's counters and each worker's state and reason."""
    orch = orchestrator()
    async with serving(orch) as app:
        await call(app, "POST", "/workers/echo/disable", headers=AUTH)
        body = (await call(app, "GET", "/status")).json()
    assert body["state"] == "running"
    assert body["max_concurrent_workers"] == 5
    workers = {w["name"]: w for w in body["workers"]}
    assert set(workers) == {"echo", "boom"}
    assert workers["echo"]["state"] == "disabled"
    assert workers["echo"]["reason"].startswith("disabled")
    assert workers["boom"]["state"] == "idle"
    assert workers["boom"]["mode"] == "triggered"


@pytest.mark.parametrize("path", ["/cluster", "/cluster/leases"])
async def test_cluster_views_are_404_in_local_mode(path: str, autojump_clock: Any) -> None:
    """A jobdeck alone on its store answers the cluster views with 404 and says why."""
    async with serving(orchestrator()) as app:
        reply = await call(app, "GET", path)
        drain = await call(app, "POST", "/cluster/nodes/n1/drain", headers=AUTH)
    assert reply.status == drain.status == 404
    assert "not a cluster" in reply.json()["error"]


async def test_status_workers_carry_their_lease_token_in_local_mode(
    autojump_clock: Any,
) -> None:
    """A running worker's /status entry has its lease token; node and expiry are null."""
    orch = orchestrator()
    release = trio.Event()

    async def hold(ctx: JobContext) -> None:
        await release.wait()

    orch.register("hold", hold, mode="triggered")
    async with serving(orch) as app:
        await orch.trigger("hold")
        await trio.testing.wait_all_tasks_blocked()
        workers = {w["name"]: w for w in (await call(app, "GET", "/status")).json()["workers"]}
        release.set()
    assert workers["hold"]["lease_token"] == 1
    assert workers["hold"]["node"] is None and workers["hold"]["lease_expires_s"] is None
    assert workers["echo"]["lease_token"] is None


async def test_metrics_answers_prometheus_text(autojump_clock: Any) -> None:
    """/metrics answers the Prometheus text format with the run counters."""
    orch = orchestrator()
    async with serving(orch) as app:
        await dead_letter(app, orch)
        await trio.testing.wait_all_tasks_blocked()  # the metrics task has seen the events
        reply = await call(app, "GET", "/metrics")
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("text/plain")
    assert b'jobdeck_runs_total{outcome="failed",worker="boom"} 1.0' in reply.body


async def test_status_writes_states_as_plain_strings(autojump_clock: Any) -> None:
    """The snapshot's enums (state, health, circuit) are written as their plain values."""
    orch = orchestrator()
    async with serving(orch) as app:
        await call(app, "POST", "/workers/echo/disable", headers=AUTH)
        await trio.sleep(1.5 * orch.config.health_interval_seconds)  # a health check ran
        body = (await call(app, "GET", "/status")).json()
    assert (body["state"], body["health"]) == ("running", "ok")
    workers = {
        w["name"]: (w["state"], w["health"], w["circuit"], w["mode"], w["priority"])
        for w in body["workers"]
    }
    assert workers == {
        "echo": ("disabled", "disabled", "closed", "triggered", "normal"),
        "boom": ("idle", "ok", "closed", "triggered", "normal"),
    }


async def chatty(ctx: JobContext) -> None:
    for n in range(12):
        ctx.log.info("line %d", n)


async def test_log_lines_dropped_show_in_status_and_metrics(autojump_clock: Any) -> None:
    """/status and /metrics count the worker log lines that fell out of the ring buffers."""
    orch = orchestrator(log_lines_per_worker=5)
    orch.register("chatty", chatty, mode="triggered")
    async with serving(orch) as app:
        await orch.trigger("chatty")
        await wait_until(orch, lambda: orch.snapshot().worker("chatty").runs_ok == 1)
        body = (await call(app, "GET", "/status")).json()
        exposition = (await call(app, "GET", "/metrics")).body
    assert body["log_lines_dropped"] == 12 - 5
    assert b"\njobdeck_log_lines_dropped_total 7.0\n" in exposition


FLOOD_BURSTS, FLOOD_LINES = 300, 10


async def flood(ctx: JobContext) -> None:
    """Thousands of log lines, in bursts that fill any small event buffer at once."""
    for burst in range(FLOOD_BURSTS):
        for n in range(FLOOD_LINES):
            ctx.log.info("burst %d line %d", burst, n)
        await trio.lowlevel.checkpoint()


def run_counts(exposition: bytes) -> dict[tuple[str, str], float]:
    """`jobdeck_runs_total` by (worker, outcome)."""
    return {
        (s.labels["worker"], s.labels["outcome"]): s.value
        for family in text_string_to_metric_families(exposition.decode())
        for s in family.samples
        if s.name == "jobdeck_runs_total"
    }


async def test_metrics_count_every_run_during_a_log_flood(autojump_clock: Any) -> None:
    """A log flood that overflows the metrics' event buffer loses no run from /metrics."""
    orch = orchestrator()
    orch.register("flood", flood, mode="triggered")
    metrics = Metrics(orch, process=False, event_buffer=16)
    app = create_app(orch, token=TOKEN, metrics=metrics)
    async with trio.open_nursery() as nursery:
        await nursery.start(metrics.run)
        await nursery.start(orch.run)
        # Room for the whole flood: this waiter must see the last run end.
        with trio.fail_after(60), orch.subscribe(2 * FLOOD_BURSTS * FLOOD_LINES) as events:
            await call(app, "POST", "/workers/flood/trigger", headers=AUTH)
            for _ in range(3):
                await call(app, "POST", "/workers/echo/trigger", headers=AUTH)
                await call(app, "POST", "/workers/boom/trigger", headers=AUTH)
            while [(w.runs_ok, w.runs_failed) for w in orch.snapshot().workers] != [
                (3, 0), (0, 3), (1, 0)
            ]:
                await events.receive.receive()
        await trio.testing.wait_all_tasks_blocked()
        status = (await call(app, "GET", "/status")).json()
        counted = run_counts((await call(app, "GET", "/metrics")).body)
        orch.stop(grace=0)
    assert status["events_dropped"] > 0
    assert {
        w["name"]: (w["runs_ok"], w["runs_failed"]) for w in status["workers"]
    } == {
        name: (counted[(name, "succeeded")], counted[(name, "failed")])
        for name in ("echo", "boom", "flood")
    }


# ---------------------------------------------------------------------- token


MUTATING = [
    ("POST", "/workers/echo/trigger"),
    ("POST", "/workers/echo/enable"),
    ("POST", "/workers/echo/disable"),
    ("POST", "/pause"),
    ("POST", "/resume"),
    ("POST", "/dlq/1/replay"),
    ("DELETE", "/dlq/1"),
    ("DELETE", "/dlq"),
    ("POST", "/reload"),
    ("POST", "/cluster/nodes/n1/drain"),
    ("POST", "/cluster/nodes/n1/undrain"),
]


@pytest.mark.parametrize(("method", "path"), MUTATING)
async def test_every_change_needs_the_token(method: str, path: str, autojump_clock: Any) -> None:
    """Every POST and DELETE answers 401 without a token, and changes nothing."""
    orch = orchestrator()
    async with serving(orch) as app:
        reply = await call(app, method, path)
        snap = orch.snapshot()
    assert reply.status == 401
    assert reply.headers["www-authenticate"].startswith("Bearer")
    assert "token" in reply.json()["error"]
    assert (snap.state, snap.pending, snap.worker("echo").enabled) == ("running", 0, True)


@pytest.mark.parametrize(
    "header", [f"Bearer {TOKEN}x", "Bearer ", f"Basic {TOKEN}", TOKEN, "Bearer wrong"]
)
async def test_a_wrong_token_is_401(header: str, autojump_clock: Any) -> None:
    """A wrong, empty or non-bearer credential answers 401."""
    async with serving(orchestrator()) as app:
        reply = await call(
            app, "POST", "/workers/echo/trigger", headers={"Authorization": header}
        )
    assert reply.status == 401


async def test_the_scheme_is_case_insensitive(autojump_clock: Any) -> None:
    """`bearer TOKEN` is accepted like `Bearer TOKEN` (RFC 7235 schemes ignore case)."""
    async with serving(orchestrator()) as app:
        reply = await call(
            app, "POST", "/pause", headers={"Authorization": f"bearer {TOKEN}"}
        )
    assert reply.status == 200


async def test_reads_need_no_token(autojump_clock: Any) -> None:
    """GET endpoints answer without a token."""
    async with serving(orchestrator()) as app:
        for path in ("/healthz", "/livez", "/status", "/metrics", "/dlq"):
            assert (await call(app, "GET", path)).status == 200, path


# ---------------------------------------------------------------------- trigger


async def test_trigger_payload_reaches_ctx_payload(autojump_clock: Any) -> None:
    """The JSON body of a trigger is the worker's `ctx.payload`; the answer is 202."""
    recorder = Recorder()
    orch = orchestrator(recorder)
    payload = {"since": "2026-01-01", "ids": [1, 2, 3], "deep": {"ok": True}, "é": None}
    async with serving(orch) as app:
        reply = await call(
            app, "POST", "/workers/echo/trigger", body=json.dumps(payload).encode(),
            headers=AUTH,
        )
        await wait_until(orch, lambda: len(recorder.payloads) == 1)
    assert reply.status == 202
    body = reply.json()
    assert body["worker"] == "echo"
    assert len(body["trigger_id"]) == 16
    assert recorder.payloads == [payload]


async def test_trigger_without_body_has_no_payload(autojump_clock: Any) -> None:
    """An empty body triggers with `ctx.payload` None."""
    recorder = Recorder()
    orch = orchestrator(recorder)
    async with serving(orch) as app:
        reply = await call(app, "POST", "/workers/echo/trigger", headers=AUTH)
        await wait_until(orch, lambda: len(recorder.payloads) == 1)
    assert reply.status == 202
    assert recorder.payloads == [None]


async def test_trigger_payload_may_arrive_in_chunks(autojump_clock: Any) -> None:
    """A body sent in several chunks (no Content-Length) is joined before parsing."""
    recorder = Recorder()
    orch = orchestrator(recorder)
    async with serving(orch) as app:
        reply = await call(
            app, "POST", "/workers/echo/trigger", body=[b'{"a":', b" [1, ", b"2]}"],
            headers=AUTH,
        )
        await wait_until(orch, lambda: len(recorder.payloads) == 1)
    assert reply.status == 202
    assert recorder.payloads == [{"a": [1, 2]}]


@pytest.mark.parametrize("body", [b"{not json", b'{"a": NaN}', b"[1, Infinity]", b"\xff\xfe",
                                  b"[" * 5000 + b"]" * 5000])
async def test_trigger_with_invalid_json_is_400(body: bytes, autojump_clock: Any) -> None:
    """A body that is not strict JSON answers 400 and queues nothing."""
    orch = orchestrator()
    async with serving(orch) as app:
        reply = await call(app, "POST", "/workers/echo/trigger", body=body, headers=AUTH)
        pending = orch.snapshot().pending
    assert reply.status == 400
    assert reply.json()["error"].startswith("payload is not valid JSON")
    assert pending == 0


async def test_trigger_over_the_size_limit_is_413(autojump_clock: Any) -> None:
    """A declared Content-Length over the limit answers 413 before the body is read."""
    async with serving(orchestrator()) as app:
        big = json.dumps({"blob": "x" * MAX_BODY_BYTES}).encode()
        reply = await call(
            app, "POST", "/workers/echo/trigger", body=big,
            headers={**AUTH, "Content-Length": str(len(big))},
        )
    assert reply.status == 413
    assert str(MAX_BODY_BYTES) in reply.json()["error"]


async def test_streamed_body_over_the_limit_is_413(autojump_clock: Any) -> None:
    """A chunked body is cut off as soon as it passes the limit."""
    async with serving(orchestrator(), max_body_bytes=100) as app:
        reply = await call(
            app, "POST", "/workers/echo/trigger", body=[b"[" + b"1," * 40, b"1," * 40 + b"1]"],
            headers=AUTH,
        )
    assert reply.status == 413


async def test_trigger_unknown_worker_is_404(autojump_clock: Any) -> None:
    """Triggering a name no worker has answers 404 naming it."""
    async with serving(orchestrator()) as app:
        reply = await call(app, "POST", "/workers/ghost/trigger", headers=AUTH)
    assert reply.status == 404
    assert reply.json() == {"error": "unknown worker 'ghost'"}


class HeldStore(MemoryStore):
    """A store whose `add_trigger` waits until the test releases it."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = trio.Event()
        self.release = trio.Event()
        self.stored: list[str] = []

    async def add_trigger(self, trigger: Trigger) -> None:
        self.entered.set()
        await self.release.wait()
        await super().add_trigger(trigger)
        self.stored.append(trigger.id)


async def test_trigger_is_answered_only_after_it_is_stored() -> None:
    """The 202 arrives only once the store has the trigger: not before."""
    store = HeldStore()
    orch = orchestrator(store=store)
    replies: list[Reply] = []
    async with serving(orch) as app:

        async def post() -> None:
            replies.append(await call(app, "POST", "/workers/echo/trigger", headers=AUTH))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(post)
            await store.entered.wait()
            await trio.testing.wait_all_tasks_blocked()
            assert replies == []
            store.release.set()
    assert replies[0].status == 202
    assert store.stored == [replies[0].json()["trigger_id"]]


async def test_trigger_before_the_orchestrator_runs_is_503(autojump_clock: Any) -> None:
    """An orchestrator that is not running answers 503 (retry later), not 500."""
    orch = orchestrator()
    app = create_app(orch, token=TOKEN, metrics=Metrics(orch, process=False))
    reply = await call(app, "POST", "/workers/echo/trigger", headers=AUTH)
    assert reply.status == 503
    assert reply.headers["retry-after"] == "5"
    assert "created" in reply.json()["error"]


# ---------------------------------------------------------------------- enable, pause


async def test_disable_and_enable(autojump_clock: Any) -> None:
    """disable and enable answer 200 and change the worker."""
    orch = orchestrator()
    async with serving(orch) as app:
        off = await call(app, "POST", "/workers/echo/disable", headers=AUTH)
        disabled = orch.snapshot().worker("echo").enabled
        on = await call(app, "POST", "/workers/echo/enable", headers=AUTH)
        enabled = orch.snapshot().worker("echo").enabled
    assert (off.status, off.json()) == (200, {"worker": "echo", "enabled": False})
    assert (on.status, on.json()) == (200, {"worker": "echo", "enabled": True})
    assert (disabled, enabled) == (False, True)


@pytest.mark.parametrize("action", ["enable", "disable"])
async def test_enable_unknown_worker_is_404(action: str, autojump_clock: Any) -> None:
    """enable/disable of an unknown name answers 404."""
    async with serving(orchestrator()) as app:
        reply = await call(app, "POST", f"/workers/ghost/{action}", headers=AUTH)
    assert reply.status == 404


async def test_pause_and_resume(autojump_clock: Any) -> None:
    """pause and resume answer 200 and change the orchestrator's state."""
    orch = orchestrator()
    async with serving(orch) as app:
        paused = await call(app, "POST", "/pause", headers=AUTH)
        state_paused = orch.snapshot().state
        resumed = await call(app, "POST", "/resume", headers=AUTH)
        state_resumed = orch.snapshot().state
    assert (paused.status, paused.json()) == (200, {"paused": True})
    assert (resumed.status, resumed.json()) == (200, {"paused": False})
    assert (state_paused, state_resumed) == ("paused", "running")


async def test_pause_after_stop_is_503(autojump_clock: Any) -> None:
    """Pausing a stopped orchestrator answers 503."""
    orch = orchestrator()
    async with serving(orch) as app:
        pass
    await orch.wait_stopped()
    assert (await call(app, "POST", "/pause", headers=AUTH)).status == 503


# ---------------------------------------------------------------------- DLQ


async def test_dlq_list_and_show(autojump_clock: Any) -> None:
    """GET /dlq lists entries without tracebacks; GET /dlq/{id} shows one with it."""
    orch = orchestrator()
    async with serving(orch) as app:
        entry_id = await dead_letter(app, orch)
        listing = await call(app, "GET", "/dlq")
        shown = await call(app, "GET", f"/dlq/{entry_id}")
    assert listing.status == 200
    body = listing.json()
    assert body["total"] == 1
    [entry] = body["entries"]
    assert entry["worker"] == "boom"
    assert entry["error"] == "RuntimeError: boom"
    assert entry["source"] == "manual"
    assert "traceback" not in entry
    assert shown.status == 200
    assert "raise RuntimeError" in shown.json()["traceback"]


async def test_dlq_limit(autojump_clock: Any) -> None:
    """`?limit=N` bounds the list; a limit that is not a positive number is 400."""
    orch = orchestrator()
    async with serving(orch) as app:
        await dead_letter(app, orch)
        await dead_letter(app, orch)
        one = await call(app, "GET", "/dlq?limit=1")
        bad = await call(app, "GET", "/dlq?limit=0")
    assert len(one.json()["entries"]) == 1
    assert one.json()["total"] == 2
    assert bad.status == 400


async def test_dlq_replay_is_202_with_a_new_trigger(autojump_clock: Any) -> None:
    """Replay answers 202 with the new trigger id; the entry leaves the DLQ."""
    orch = orchestrator()
    async with serving(orch) as app:
        entry_id = await dead_letter(app, orch)
        orch.pause()  # keep the replayed run from failing straight back into the DLQ
        reply = await call(app, "POST", f"/dlq/{entry_id}/replay", headers=AUTH)
        after = await call(app, "GET", f"/dlq/{entry_id}")
        pending = orch.snapshot().worker("boom").pending
    assert reply.status == 202
    body = reply.json()
    assert (body["worker"], body["dlq_id"]) == ("boom", entry_id)
    assert len(body["trigger_id"]) == 16
    assert after.status == 404
    assert pending == 1


async def test_dlq_delete_then_404(autojump_clock: Any) -> None:
    """DELETE /dlq/{id} answers 200; the same again answers 404."""
    orch = orchestrator()
    async with serving(orch) as app:
        entry_id = await dead_letter(app, orch)
        first = await call(app, "DELETE", f"/dlq/{entry_id}", headers=AUTH)
        second = await call(app, "DELETE", f"/dlq/{entry_id}", headers=AUTH)
    assert (first.status, first.json()) == (200, {"deleted": entry_id})
    assert second.status == 404
    assert second.json() == {"error": f"no dead-letter entry with id {entry_id}"}


async def test_dlq_purge(autojump_clock: Any) -> None:
    """DELETE /dlq removes every entry and says how many."""
    orch = orchestrator()
    async with serving(orch) as app:
        await dead_letter(app, orch)
        await dead_letter(app, orch)
        reply = await call(app, "DELETE", "/dlq", headers=AUTH)
        size = orch.snapshot().dlq_size
    assert (reply.status, reply.json(), size) == (200, {"deleted": 2}, 0)


@pytest.mark.parametrize(("method", "path"), [("GET", "/dlq/99"), ("POST", "/dlq/99/replay")])
async def test_unknown_dlq_entry_is_404(method: str, path: str, autojump_clock: Any) -> None:
    """An entry id the DLQ does not hold answers 404."""
    async with serving(orchestrator()) as app:
        reply = await call(app, method, path, headers=AUTH)
    assert reply.status == 404


async def test_replay_of_a_worker_no_longer_registered_is_409(autojump_clock: Any) -> None:
    """An entry whose worker was removed from the config cannot be replayed: 409."""
    store = MemoryStore()
    at = datetime(2026, 1, 1, tzinfo=UTC)
    trigger = Trigger(worker="retired", source=Source.MANUAL, accepted_at=at)
    run = RunRecord(worker="retired", trigger=trigger, started_at=at,
                    status=RunStatus.FAILED, ended_at=at, error="x")
    entry_id = await store.finish_run(
        run, worker=WorkerState(name="retired"),
        dead_letter=DeadLetterDraft(error="x", traceback="tb"),
    )
    async with serving(orchestrator(store=store)) as app:
        reply = await call(app, "POST", f"/dlq/{entry_id}/replay", headers=AUTH)
    assert reply.status == 409
    assert "unknown worker 'retired'" in reply.json()["error"]


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/dlq/{}"), ("DELETE", "/dlq/{}"), ("POST", "/dlq/{}/replay"),
])
@pytest.mark.parametrize("entry_id", [2**63 - 1, 2**63, 99999999999999999999999])
async def test_a_dead_letter_id_past_any_store_is_404(
    method: str, path: str, entry_id: int, tmp_path: Path
) -> None:
    """An id up to and past 2**63 - 1 answers 404 on a SQLite store, like any unknown one."""
    async with serving(orchestrator(store=SQLiteStore(tmp_path / "jobs.db"))) as app:
        reply = await call(app, method, path.format(entry_id), headers=AUTH)
    assert reply.status == 404
    assert reply.json() == {"error": f"no dead-letter entry with id {entry_id}"}


# ---------------------------------------------------------------------- reload

SAMPLE = '[workers.{name}]\nfn = "tests.core.sample_workers:ok"\nmode = "triggered"\n'


def config_file(tmp_path: Path, *names: str) -> Path:
    path = tmp_path / "jobs.toml"
    path.write_text("".join(SAMPLE.format(name=name) for name in names))
    return path


async def test_reload_is_200_with_what_changed(autojump_clock: Any, tmp_path: Path) -> None:
    """POST /reload reads the config file again and answers what changed."""
    path = config_file(tmp_path, "a", "b")
    orch = Orchestrator.from_config(load_config(path), now=virtual_wall_clock)
    async with serving(orch) as app:
        config_file(tmp_path, "b", "c")
        reply = await call(app, "POST", "/reload", headers=AUTH)
        names = [w["name"] for w in (await call(app, "GET", "/status")).json()["workers"]]
    assert reply.status == 200
    assert reply.json() == {
        "added": ["c"], "removed": ["a"], "changed": [], "orchestrator": [],
        "restart_needed": [],
    }
    assert names == ["b", "c"]


async def test_reload_of_a_broken_config_is_400_with_its_problems(
    autojump_clock: Any, tmp_path: Path
) -> None:
    """POST /reload answers 400 with check's messages, and nothing changes."""
    path = config_file(tmp_path, "a")
    orch = Orchestrator.from_config(load_config(path), now=virtual_wall_clock)
    async with serving(orch) as app:
        path.write_text(SAMPLE.format(name="a") + 'depends_on = ["ghost"]\n')
        reply = await call(app, "POST", "/reload", headers=AUTH)
        names = orch.worker_names
    assert reply.status == 400
    body = reply.json()
    assert body["problems"] == [
        f"{path}: worker 'a': key 'depends_on': unknown worker 'ghost'"
    ]
    assert "nothing changed" in body["error"]
    assert names == ["a"]


async def test_reload_without_a_config_file_is_409(autojump_clock: Any) -> None:
    """An orchestrator whose workers were registered in Python has no file to reload."""
    async with serving(orchestrator()) as app:
        reply = await call(app, "POST", "/reload", headers=AUTH)
    assert reply.status == 409


# ---------------------------------------------------------------------- routing & errors


@pytest.mark.parametrize("path", ["/nope", "/workers/echo", "/dlq/abc", "/healthz/"])
async def test_unknown_route_is_404_json(path: str, autojump_clock: Any) -> None:
    """A path no endpoint has answers 404 with a JSON error."""
    async with serving(orchestrator()) as app:
        reply = await call(app, "GET", path)
    assert reply.status == 404
    assert reply.json() == {"error": f"not found: GET {path}"}


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [("POST", "/healthz", "GET"), ("GET", "/workers/echo/trigger", "POST"),
     ("PUT", "/dlq/1", "GET, DELETE"), ("PATCH", "/dlq", "GET, DELETE")],
)
async def test_wrong_method_is_405_json(
    method: str, path: str, allowed: str, autojump_clock: Any
) -> None:
    """A known path with the wrong method answers 405, a JSON error and `Allow`."""
    async with serving(orchestrator()) as app:
        reply = await call(app, method, path, headers=AUTH)
    assert reply.status == 405
    assert set(reply.headers["allow"].split(", ")) >= set(allowed.split(", "))
    assert reply.json()["error"].startswith(f"method {method} not allowed on {path}")


async def test_a_bug_is_500_json_without_traceback(autojump_clock: Any) -> None:
    """An unexpected exception answers 500 with a JSON error; the traceback stays out."""
    orch = orchestrator()
    async with serving(orch) as app:

        def broken() -> Any:
            raise ZeroDivisionError("secret detail")

        orch.snapshot = broken  # type: ignore[method-assign]
        reply = await call(app, "GET", "/status")
        del orch.snapshot
    assert reply.status == 500
    assert reply.json() == {"error": "internal error: ZeroDivisionError"}
    assert isinstance(reply.raised, ZeroDivisionError)  # for the server to log


# ---------------------------------------------------------------------- addresses, token


@pytest.mark.parametrize(
    ("text", "expected"),
    [("127.0.0.1:8765", ("127.0.0.1", 8765)), ("0.0.0.0:0", ("0.0.0.0", 0)),
     (":9000", ("127.0.0.1", 9000)), ("9000", ("127.0.0.1", 9000)),
     ("localhost:80", ("localhost", 80)), ("[::1]:8080", ("::1", 8080))],
)
def test_parse_address(text: str, expected: tuple[str, int]) -> None:
    """HOST:PORT forms accepted by --http; the host defaults to 127.0.0.1."""
    assert parse_address(text) == expected


@pytest.mark.parametrize("text", ["", "host", "host:", "host:http", "h:70000", "::1:80",
                                  "[::1]", "[::1]80", "h:-1"])
def test_parse_address_rejects(text: str) -> None:
    """Addresses without a valid port, or a bare IPv6 host, are refused."""
    with pytest.raises(ValueError):
        parse_address(text)


def test_format_address_brackets_ipv6() -> None:
    """An IPv6 host is written in brackets."""
    assert format_address("::1", 80) == "[::1]:80"
    assert format_address("127.0.0.1", 80) == "127.0.0.1:80"


def test_token_from_env() -> None:
    """JOBDECK_API_TOKEN gives the token; unset or blank gives None."""
    assert token_from_env({"JOBDECK_API_TOKEN": " abc "}) == "abc"
    assert token_from_env({"JOBDECK_API_TOKEN": "  "}) is None
    assert token_from_env({}) is None


def test_token_file_is_beside_a_sqlite_store(tmp_path: Path) -> None:
    """A SQLite store at jobs.db gets its token at jobs.db.token."""
    store = SQLiteStore(tmp_path / "jobs.db")
    assert token_file_for(store, tmp_path / "x.toml") == tmp_path / "jobs.db.token"


def test_token_file_of_a_memory_store_is_in_the_state_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A :memory: store's token goes to $XDG_STATE_HOME/jobdeck/<config name>-<hash>.token."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    path = token_file_for(MemoryStore(), Path("/etc/jobs/nightly.toml"))
    assert path.parent == tmp_path / "jobdeck"
    assert path.name.startswith("nightly-") and path.suffix == ".token"


def test_write_token_file_is_mode_0600(tmp_path: Path) -> None:
    """The token file is created (folder too) readable by its owner only, atomically."""
    path = tmp_path / "state" / "jobs.db.token"
    old_umask = os.umask(0)
    try:
        write_token_file(path, "abc")
    finally:
        os.umask(old_umask)
    assert path.read_text() == "abc\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["jobs.db.token"]


def test_write_token_file_failure_is_a_clear_error(tmp_path: Path) -> None:
    """An unwritable place is an HttpApiError that suggests the environment variable."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(HttpApiError, match="JOBDECK_API_TOKEN"):
        write_token_file(blocker / "jobs.token", "abc")


# ---------------------------------------------------------------------- real socket


def http(
    method: str, url: str, *, body: bytes | None = None, token: str | None = None
) -> tuple[int, dict[str, Any]]:
    """A blocking HTTP request with urllib: (status, JSON body)."""
    request = urllib.request.Request(url, data=body, method=method)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read())


async def test_real_socket_round_trip() -> None:
    """Over a real socket: health, an authorised trigger into ctx.payload, a 401."""
    recorder = Recorder()
    orch = orchestrator(recorder)
    server = ApiServer(orch, "127.0.0.1:0", token=TOKEN, graceful_timeout=1)
    async with trio.open_nursery() as nursery:
        orch.http_address = address = await nursery.start(server.serve)
        await nursery.start(orch.run)
        base = f"http://{address}"
        health = await trio.to_thread.run_sync(http, "GET", f"{base}/healthz")
        denied = await trio.to_thread.run_sync(
            lambda: http("POST", f"{base}/workers/echo/trigger", body=b"{}")
        )
        accepted = await trio.to_thread.run_sync(
            lambda: http("POST", f"{base}/workers/echo/trigger", body=b'{"n": 7}', token=TOKEN)
        )
        await wait_until(orch, lambda: recorder.payloads == [{"n": 7}])
        missing = await trio.to_thread.run_sync(http, "GET", f"{base}/nope")
        orch.stop(grace=0)
        await orch.wait_stopped()
        server.close()
        await server.wait_closed()
    assert health[0] == 200
    assert denied[0] == 401
    assert accepted[0] == 202
    assert missing == (404, {"error": "not found: GET /nope"})


async def test_real_socket_port_is_released_after_close() -> None:
    """Once the server is closed, its port can be bound again at once."""
    orch = orchestrator()
    server = ApiServer(orch, "127.0.0.1:0", token=TOKEN, graceful_timeout=1)
    async with trio.open_nursery() as nursery:
        address = await nursery.start(server.serve)
        await nursery.start(orch.run)
        status, _ = await trio.to_thread.run_sync(http, "GET", f"http://{address}/livez")
        orch.stop(grace=0)
        await orch.wait_stopped()
        server.close()
        await server.wait_closed()
    assert status == 200
    host, port = parse_address(address)
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))
        probe.listen()


async def test_a_busy_port_is_an_http_api_error() -> None:
    """Serving on a port another socket listens on raises HttpApiError naming it."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = ApiServer(orchestrator(), f"127.0.0.1:{port}", token=TOKEN)
        with pytest.raises(HttpApiError, match=f"cannot serve HTTP on 127.0.0.1:{port}"):
            await server.serve()


# ---------------------------------------------------------------------- reads for attach


async def logging_worker(ctx: JobContext) -> None:
    ctx.log.info("hello %s", ctx.payload)


async def test_runs_logs_and_triggers_need_the_token(autojump_clock: Any) -> None:
    """History, logs and pending triggers carry payloads and log lines: token needed."""
    async with serving(orchestrator()) as app:
        for path in ("/runs", "/logs", "/workers/echo/logs", "/workers/echo/triggers"):
            assert (await call(app, "GET", path)).status == 401, path
            assert (await call(app, "GET", path, headers=AUTH)).status == 200, path


async def test_runs_logs_and_triggers_answer_what_the_orchestrator_holds(
    autojump_clock: Any,
) -> None:
    """/runs, /workers/{name}/logs and /workers/{name}/triggers read the orchestrator."""
    orch = orchestrator()
    orch.register("talk", logging_worker, mode="triggered")
    orch.register("held", logging_worker, mode="triggered", enabled=False)
    async with serving(orch) as app:
        await call(app, "POST", "/workers/talk/trigger", body=b'"x"', headers=AUTH)
        await call(app, "POST", "/workers/held/trigger", body=b'{"a": 1}', headers=AUTH)
        await wait_until(orch, lambda: orch.snapshot().worker("talk").runs_ok == 1)
        runs = (await call(app, "GET", "/runs?worker=talk&limit=5", headers=AUTH)).json()
        logs = (await call(app, "GET", "/workers/talk/logs", headers=AUTH)).json()
        held = (await call(app, "GET", "/workers/held/triggers", headers=AUTH)).json()
        unknown = await call(app, "GET", "/workers/ghost/logs", headers=AUTH)
    assert [(r["worker"], r["status"], r["trigger"]["payload"]) for r in runs["runs"]] == [
        ("talk", "succeeded", "x")
    ]
    assert [(line["worker"], line["message"]) for line in logs["lines"]] == [("talk", "hello x")]
    assert [(t["worker"], t["source"], t["payload"]) for t in held["triggers"]] == [
        ("held", "manual", {"a": 1})
    ]
    assert unknown.status == 404


async def test_status_in_detail_has_specs_durations_and_grace(autojump_clock: Any) -> None:
    """/status?detail=full adds what a remote dashboard shows: spec, durations, grace."""
    async with serving(orchestrator()) as app:
        plain = (await call(app, "GET", "/status")).json()
        full = (await call(app, "GET", "/status?detail=full")).json()
    echo = next(w for w in full["workers"] if w["name"] == "echo")
    assert echo["spec"]["mode"] == "triggered"
    assert echo["spec"]["priority"] == "normal"
    assert {"durations", "last_traceback", "may_run"} <= echo.keys()
    assert "grace_left_s" in full
    assert "spec" not in plain["workers"][0]


def test_token_file_of_a_cluster_is_named_for_its_database_not_its_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A PostgreSQL store's token file is in the state folder, named for the database
    (host, port, database): the same for every node and config, never the password."""
    from jobdeck._pg_store import PgStore

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    one = token_file_for(PgStore("postgresql://jd:s3cret@db.internal:5433/jobs"),
                         Path("/etc/jobs/a.toml"))
    two = token_file_for(PgStore("postgresql://jd:other@db.internal:5433/jobs"),
                         Path("/srv/b.toml"))
    elsewhere = token_file_for(PgStore("postgresql://jd:s3cret@db.internal:5433/other"),
                               Path("/etc/jobs/a.toml"))
    assert one == two != elsewhere
    assert one.parent == tmp_path / "jobdeck"
    assert one.name.startswith("pg-db.internal-5433-jobs-") and one.suffix == ".token"
    assert "s3cret" not in str(one)


def test_a_shared_token_is_made_once_and_read_by_every_node(tmp_path: Path) -> None:
    """Nodes starting at once on one machine all get the one token the first wrote
    (mode 0600); a later node reads it."""
    import threading

    path = tmp_path / "state" / "pg-db-jobs-1234abcd.token"
    got: list[str] = []
    barrier = threading.Barrier(8)

    def node() -> None:
        barrier.wait()
        got.append(shared_token(path))

    threads = [threading.Thread(target=node) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 8 and len(set(got)) == 1
    assert path.read_text() == got[0] + "\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert shared_token(path) == got[0]
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left
