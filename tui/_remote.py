"""`jobdeck attach URL`: the dashboard on a headless jobdeck, over its HTTP API.

The dashboard reads an orchestrator through its bridge and model; here both are
stand-ins that talk HTTP instead of running a core:

* `RemoteOrchestrator` answers the model's synchronous reads (`snapshot()`, `logs()`,
  `pending_triggers()`) from what was fetched last, and its async reads (`history`,
  `dead_letters`) with a request each;
* `RemoteBridge` (a `CoreBridge` without a guest run) keeps them fresh: it follows
  `GET /events` (Server-Sent Events, resumed with `Last-Event-ID`), hands the events to
  the app as the local bridge does, and fetches `GET /status?detail=full` again after
  events (at most `SNAPSHOT_MIN_INTERVAL` apart) and every second for countdowns; a
  `resync` frame (events were lost) makes it fetch everything again. Control actions
  become the API's POST and DELETE requests; a refused one comes back as a
  `ControlFailed` event, as locally.

Quitting closes the dashboard only: the remote jobdeck runs on. HTTP/1.1 is spoken with
h11 (sans-IO, already installed with hypercorn) over asyncio streams, on Textual's loop.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import attrs
import h11
import outcome
from textual.message_pump import MessagePump

from jobdeck import (
    Circuit,
    ClusterSnapshot,
    ConfigError,
    ControlFailed,
    DeadLetter,
    Event,
    Health,
    LogLine,
    LogRecordView,
    OrchestratorConfig,
    OrchestratorPaused,
    OrchestratorResumed,
    OrchestratorSnapshot,
    OrchestratorState,
    OrchestratorStopped,
    ReloadResult,
    RunRecord,
    RunStatus,
    Source,
    Trigger,
    WorkerDisabled,
    WorkerEnabled,
    WorkerSnapshot,
    WorkerSpec,
    WorkerStatus,
)

from ._bridge import ANNOUNCE_AT, BridgeState, CoreBridge, CoreNotRunning

T = TypeVar("T")

#: Seconds between two snapshot fetches while events keep coming.
SNAPSHOT_MIN_INTERVAL = 0.05
#: A fetch that took t seconds is followed by none for SNAPSHOT_SHARE * t.
SNAPSHOT_SHARE = 5.0
#: Seconds between snapshot fetches when nothing happens (countdowns move on).
SNAPSHOT_IDLE_INTERVAL = 1.0
#: Seconds before the event stream is opened again after it broke.
RECONNECT_DELAY = 1.0
#: Log lines kept here, over all workers (the node keeps its own per worker).
LOG_LINES_KEPT = 5_000
#: Seconds a worker's pending triggers stay watched after the model last asked.
TRIGGERS_WATCHED_S = 3.0
#: The dashboard's refresh tick when attached: no core shares its thread, so it can look
#: for a fresh snapshot more often than the local dashboard does.
ATTACHED_REFRESH_INTERVAL = 0.02
#: Seconds one request may take.
REQUEST_TIMEOUT = 10.0


class RemoteError(OSError):
    """The remote jobdeck cannot be reached, or answered with an error."""

    def __init__(self, message: str, status: int | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


# ---------------------------------------------------------------------- HTTP


class HttpClient:
    """Requests to one jobdeck API, one connection each (loopback or a LAN: cheap)."""

    def __init__(self, base_url: str, token: str | None) -> None:
        parts = urllib.parse.urlsplit(base_url if "://" in base_url else f"http://{base_url}")
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"expected http://HOST:PORT, got {base_url!r}")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.netloc = parts.netloc
        self.base_url = f"http://{parts.netloc}"
        self._token = token

    def _headers(self, extra: dict[str, str] | None = None) -> list[tuple[str, str]]:
        headers = [("Host", self.netloc), ("Connection", "close")]
        if self._token:
            headers.append(("Authorization", f"Bearer {self._token}"))
        headers += list((extra or {}).items())
        return headers

    async def request(self, method: str, path: str, body: Any = None, *,
                      has_body: bool = False) -> tuple[int, Any]:
        """One request; the answer's status and JSON body.

        Raises:
            RemoteError: the connection failed or the answer is not JSON.
        """
        data = json.dumps(body).encode() if has_body else b""
        extra = {"Content-Length": str(len(data)), "Accept": "application/json"}
        if has_body:
            extra["Content-Type"] = "application/json"
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                status, chunks = await self._exchange(method, path, data, extra)
                payload = b"".join([chunk async for chunk in chunks])
        except (OSError, h11.ProtocolError, TimeoutError) as exc:
            raise RemoteError(f"{method} {self.base_url}{path}: {exc or type(exc).__name__}") \
                from None
        try:
            return status, json.loads(payload) if payload.strip() else None
        except ValueError:
            raise RemoteError(f"{method} {path}: the answer is not JSON", status) from None

    async def stream(self, path: str, headers: dict[str, str]) -> tuple[int, AsyncIterator[bytes]]:
        """A GET whose body is read as it comes (an event stream)."""
        return await self._exchange("GET", path, b"", headers)

    async def _exchange(
        self, method: str, path: str, data: bytes, extra: dict[str, str]
    ) -> tuple[int, AsyncIterator[bytes]]:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        connection = h11.Connection(h11.CLIENT)
        out = connection.send(h11.Request(method=method, target=path, headers=self._headers(extra)))
        if data:
            out += connection.send(h11.Data(data=data))
        out += connection.send(h11.EndOfMessage())
        writer.write(out)
        await writer.drain()

        async def next_event() -> Any:
            while True:
                event = connection.next_event()
                if event is not h11.NEED_DATA:
                    return event
                connection.receive_data(await reader.read(65536))

        try:
            response = await next_event()
            while isinstance(response, h11.InformationalResponse):
                response = await next_event()
        except BaseException:
            writer.close()
            raise
        if not isinstance(response, h11.Response):
            writer.close()
            raise RemoteError(f"{method} {path}: no answer")

        async def body() -> AsyncIterator[bytes]:
            try:
                while True:
                    event = await next_event()
                    if isinstance(event, h11.Data):
                        yield bytes(event.data)
                    else:  # EndOfMessage, ConnectionClosed
                        return
            finally:
                writer.close()

        return response.status_code, body()


@attrs.frozen
class SseFrame:
    id: str | None
    event: str
    data: str


async def sse_frames(chunks: AsyncIterator[bytes]) -> AsyncIterator[SseFrame]:
    """The frames of a Server-Sent Events body (comments and retry hints skipped)."""
    text = ""
    async for chunk in chunks:
        text += chunk.decode("utf-8", "replace").replace("\r\n", "\n")
        while "\n\n" in text:
            block, text = text.split("\n\n", 1)
            fields: dict[str, str] = {}
            for line in block.split("\n"):
                if not line or line.startswith(":"):
                    continue
                key, _, value = line.partition(":")
                value = value.removeprefix(" ")
                fields[key] = fields[key] + "\n" + value if key == "data" and key in fields \
                    else value
            if "data" in fields:
                yield SseFrame(fields.get("id"), fields.get("event", "message"), fields["data"])


# ---------------------------------------------------------------------- JSON back to values


def _time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _event_classes() -> dict[str, type[Event]]:
    found: dict[str, type[Event]] = {}
    todo: list[type[Event]] = [Event]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls.name != "event" and cls.name not in found:
            found[cls.name] = cls
    return found


_EVENT_CLASSES = _event_classes()


def event_from_json(data: dict[str, Any]) -> Event | None:
    """The typed event of a `--log-format json` object (None for a name not known here)."""
    cls = _EVENT_CLASSES.get(data.get("event", ""))
    if cls is None:
        return None
    kwargs: dict[str, Any] = {}
    for field in attrs.fields(cls):
        if field.name not in data:
            if field.default is attrs.NOTHING:
                kwargs[field.name] = None
            continue
        value = data[field.name]
        if field.name == "ts":
            value = _time(value)
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[field.name] = value
    try:
        return cls(**kwargs)
    except (TypeError, ValueError):
        return None


#: worker -> its spec as last read, and the `WorkerSpec` made of it (specs rarely change;
#: making a thousand again for every snapshot would cost more than reading them).
SpecCache = dict[str, tuple[dict[str, Any], WorkerSpec]]


def snapshot_from_json(
    data: dict[str, Any], specs: SpecCache | None = None
) -> OrchestratorSnapshot:
    """An orchestrator snapshot from `GET /status?detail=full`."""
    specs = specs if specs is not None else {}
    taken_at = _time(data["taken_at"]) or datetime.now(UTC)
    return OrchestratorSnapshot(
        state=OrchestratorState(data["state"]),
        health=Health(data["health"]),
        health_reasons=tuple(data["health_reasons"]),
        running=data["running"],
        max_concurrent_workers=data["max_concurrent_workers"],
        pending=data["pending"],
        dlq_size=data["dlq_size"],
        started_at=_time(data["started_at"]),
        uptime_s=data["uptime_s"] or 0.0,
        loop_lag_s=data["loop_lag_s"] or 0.0,
        events_published=data["events_published"],
        events_dropped=data["events_dropped"],
        store_errors=data["store_errors"],
        log_lines_dropped=data["log_lines_dropped"],
        grace_left_s=data.get("grace_left_s"),
        taken_at=taken_at,
        workers=tuple(_worker_from_json(w, specs) for w in data["workers"]),
        cluster=_cluster_from_json(data.get("cluster")),
    )


def _cluster_from_json(data: Any) -> ClusterSnapshot | None:
    """The node's view of its cluster (`/status` `cluster`); None in local mode (or from
    a node too old to say)."""
    if not isinstance(data, dict):
        return None
    return ClusterSnapshot(
        node=str(data["node"]), store=str(data["store"]), nodes=int(data["nodes"]),
        slots_used=int(data["slots_used"]), slots_max=int(data["slots_max"]),
        node_used=int(data["node_used"]), node_capacity=int(data["node_capacity"]),
        node_state=str(data["node_state"]), listener_ok=bool(data["listener_ok"]),
        read_age_s=float(data.get("read_age_s") or 0.0),
    )


def _spec_from_json(name: str, data: dict[str, Any], specs: SpecCache) -> WorkerSpec:
    cached = specs.get(name)
    if cached is not None and cached[0] == data:
        return cached[1]
    fields = {key: value for key, value in data.items() if key != "name"}
    spec = WorkerSpec(name=name, **fields)
    specs[name] = (data, spec)
    return spec


def _worker_from_json(w: dict[str, Any], specs: SpecCache) -> WorkerSnapshot:
    return WorkerSnapshot(
        name=w["name"],
        spec=_spec_from_json(w["name"], w["spec"], specs),
        fn=w["fn"],
        state=WorkerStatus(w["state"]),
        reason=w["reason"],
        health=Health(w["health"]),
        health_reasons=tuple(w["health_reasons"]),
        enabled=w["enabled"],
        circuit=Circuit(w["circuit"]),
        may_run=w["may_run"],
        consecutive_failures=w["consecutive_failures"],
        attempt=w["attempt"],
        max_attempts=w["max_attempts"],
        runs_ok=w["runs_ok"],
        runs_failed=w["runs_failed"],
        pending=w["pending"],
        last_start=_time(w["last_start"]),
        last_success=_time(w["last_success"]),
        last_error=w["last_error"],
        last_traceback=w["last_traceback"],
        last_duration_s=w["last_duration_s"],
        durations=tuple(d for d in w["durations"] if d is not None),
        next_due=_time(w["next_due"]),
        running_since=_time(w["running_since"]),
        run_id=w["run_id"],
        node=w.get("node"),
        lease_token=w.get("lease_token"),
        lease_expires_s=w.get("lease_expires_s"),
    )


def trigger_from_json(t: dict[str, Any]) -> Trigger:
    return Trigger(
        id=t["id"], worker=t["worker"], source=Source(t["source"]), payload=t["payload"],
        accepted_at=_time(t["accepted_at"]) or datetime.now(UTC),
    )


def run_from_json(r: dict[str, Any]) -> RunRecord:
    return RunRecord(
        id=r["id"], worker=r["worker"], trigger=trigger_from_json(r["trigger"]),
        status=RunStatus(r["status"]), started_at=_time(r["started_at"]) or datetime.now(UTC),
        ended_at=_time(r["ended_at"]), attempts=r["attempts"], duration_s=r["duration_s"],
        error=r["error"],
    )


def dead_letter_from_json(d: dict[str, Any]) -> DeadLetter:
    return DeadLetter(
        id=d["id"], worker=d["worker"], trigger_id=d["trigger_id"], source=Source(d["source"]),
        payload=d["payload"], error=d["error"], traceback=d.get("traceback") or "",
        attempts=d["attempts"], started_at=_time(d["started_at"]) or datetime.now(UTC),
        failed_at=_time(d["failed_at"]) or datetime.now(UTC), run_id=d["run_id"],
    )


def log_line_from_json(line: dict[str, Any]) -> LogRecordView:
    return LogRecordView(
        ts=_time(line["ts"]) or datetime.now(UTC), worker=line["worker"],
        run_id=line["run_id"], level=line["level"], message=line["message"],
    )


# ---------------------------------------------------------------------- the stand-ins

_EMPTY_SNAPSHOT = OrchestratorSnapshot(
    state=OrchestratorState.CREATED, health=Health.OK, health_reasons=(), running=0,
    max_concurrent_workers=0, pending=0, dlq_size=0, started_at=None, uptime_s=0.0,
    loop_lag_s=0.0, events_published=0, events_dropped=0, store_errors=0,
    log_lines_dropped=0, grace_left_s=None, taken_at=datetime.fromtimestamp(0, UTC), workers=(),
)


class RemoteOrchestrator:
    """What the dashboard reads of an orchestrator, for one served over HTTP."""

    def __init__(self, client: HttpClient) -> None:
        self.client = client
        self.config = OrchestratorConfig()
        self.latest: OrchestratorSnapshot | None = None
        self.specs: SpecCache = {}
        self.log_lines: deque[LogRecordView] = deque(maxlen=LOG_LINES_KEPT)
        self.triggers: dict[str, list[Trigger]] = {}
        #: worker -> when the model last asked for its pending triggers (monotonic).
        self.triggers_watched: dict[str, float] = {}
        self.bridge: RemoteBridge | None = None

    # reads the model makes without awaiting: answered from what was fetched last
    def snapshot(self) -> OrchestratorSnapshot:
        """The latest snapshot fetched; before the first, an empty one (`created`)."""
        if self.latest is None:
            return _EMPTY_SNAPSHOT
        return self.latest

    def pending_triggers(self, worker: str) -> list[Trigger]:
        self.triggers_watched[worker] = time.monotonic()
        return self.triggers.get(worker, [])

    def logs(self, worker: str | None = None, limit: int = 200) -> list[LogRecordView]:
        lines = [line for line in self.log_lines if worker is None or line.worker == worker]
        return lines[-limit:]

    # reads the model awaits through `bridge.read`
    async def dead_letters(self, limit: int | None = None) -> list[DeadLetter]:
        query = f"?traceback=1&limit={limit}" if limit else "?traceback=1"
        body = await self._get(f"/dlq{query}")
        return [dead_letter_from_json(d) for d in body["entries"]]

    async def history(self, worker: str | None = None, limit: int = 50) -> list[RunRecord]:
        query = urllib.parse.urlencode({"limit": limit, **({"worker": worker} if worker else {})})
        body = await self._get(f"/runs?{query}")
        return [run_from_json(r) for r in body["runs"]]

    async def cluster_status(self) -> dict[str, Any]:
        """`GET /cluster`: LookupError if the node is not in cluster mode."""
        body = await self._get("/cluster")
        return body if isinstance(body, dict) else {"nodes": []}

    async def cluster_leases(self) -> list[dict[str, Any]]:
        """`GET /cluster/leases`."""
        body = await self._get("/cluster/leases")
        return list(body.get("leases") or []) if isinstance(body, dict) else []

    async def set_node_state(self, name: str, state: str) -> bool:
        """`POST /cluster/nodes/{name}/drain` (or `undrain`); False for an unknown node.

        Raises:
            RemoteError: refused (401: no token), or the node could not be reached.
        """
        verb = "drain" if state == "draining" else "undrain"
        status, body = await self.client.request(
            "POST", f"/cluster/nodes/{_quote(name)}/{verb}"
        )
        if status == 404:
            return False
        if status != 200:
            error = body.get("error") if isinstance(body, dict) else body
            raise RemoteError(f"{status}: {error}", status, body)
        return True

    async def _get(self, path: str) -> Any:
        status, body = await self.client.request("GET", path)
        if status == 404:
            raise LookupError(body.get("error") if isinstance(body, dict) else path)
        if status != 200:
            raise RemoteError(f"GET {path}: {status} {body}", status, body)
        return body

    # control the app and controller call directly
    def pause(self) -> None:
        if self.bridge is not None:
            self.bridge.control("pause")

    def resume(self) -> None:
        if self.bridge is not None:
            self.bridge.control("resume")

    def stop(self, grace: float | None = None) -> None:
        """Quitting `attach` closes the dashboard; the remote jobdeck runs on."""
        if self.bridge is not None:
            self.bridge.close()


def _quote(name: str) -> str:
    return urllib.parse.quote(str(name), safe="")


#: action -> (method, path for the arguments, whether the first extra argument is a body)
_CONTROL: dict[str, Callable[..., tuple[str, str]]] = {
    "trigger": lambda name, *_: ("POST", f"/workers/{_quote(name)}/trigger"),
    "enable": lambda name: ("POST", f"/workers/{_quote(name)}/enable"),
    "disable": lambda name: ("POST", f"/workers/{_quote(name)}/disable"),
    "pause": lambda: ("POST", "/pause"),
    "resume": lambda: ("POST", "/resume"),
    "replay": lambda entry_id: ("POST", f"/dlq/{int(entry_id)}/replay"),
    "delete_dead_letter": lambda entry_id: ("DELETE", f"/dlq/{int(entry_id)}"),
    "purge_dead_letters": lambda: ("DELETE", "/dlq"),
}


class RemoteBridge(CoreBridge):
    """A `CoreBridge` for a remote orchestrator: events, reads and control over HTTP."""

    def __init__(self, orch: RemoteOrchestrator) -> None:
        super().__init__(orch)  # type: ignore[arg-type]
        self.remote = orch
        orch.bridge = self
        self._closing = asyncio.Event()
        self._stale = asyncio.Event()
        self._fresh_snapshot = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._last_id: str | None = None
        #: events taken so far, and the changes some made to the shown snapshot ahead of
        #: the next fetch: (events taken when it was made, the change).
        self._taken_count = 0
        self._patches: list[tuple[int, Callable[[OrchestratorSnapshot], OrchestratorSnapshot]]] = []
        #: events lost by this client (announced by resync frames).
        self.missed = 0

    # ------------------------------------------------------------------ lifecycle

    def start(self, target: MessagePump) -> None:
        self._begin(target)
        self._spawn(self._main_remote())

    def close(self) -> None:
        """Stop following the remote jobdeck (the dashboard is quitting)."""
        self._closing.set()

    def _spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _main_remote(self) -> None:
        result: outcome.Outcome[None] = outcome.Value(None)
        try:
            await self._fetch_snapshot()
            await self._fetch_logs()
            self.state = BridgeState.RUNNING
            if self._ready is not None and not self._ready.done():
                self._ready.set_result(None)
            self._post(CoreBridge.Ready())
            follow = self._spawn(self._follow_events())
            refresh = self._spawn(self._refresh_snapshots())
            closing = self._spawn(self._closing.wait())
            await asyncio.wait({follow, closing}, return_when=asyncio.FIRST_COMPLETED)
            for task in (follow, refresh, closing):
                task.cancel()
        except Exception as exc:
            result = outcome.Error(exc)
        finally:
            self._finish(result)

    def _finish(self, result: outcome.Outcome[None]) -> None:
        for task in list(self._tasks):
            task.cancel()
        self._announce()
        self._on_done(result)

    # ------------------------------------------------------------------ events

    async def _follow_events(self) -> None:
        """Follow `/events` until the remote orchestrator has stopped; reconnect (with
        `Last-Event-ID`) when the stream breaks."""
        client = self.remote.client
        while True:
            headers = {"Accept": "text/event-stream"}
            if self._last_id is not None:
                headers["Last-Event-ID"] = self._last_id
            try:
                status, chunks = await client.stream("/events", headers)
                if status != 200:
                    raise RemoteError(f"GET /events: {status}", status)
                async for frame in sse_frames(chunks):
                    if self._take_frame(frame):
                        return
            except (OSError, h11.ProtocolError):
                pass
            self._stale.set()
            await asyncio.sleep(RECONNECT_DELAY)

    def _take_frame(self, frame: SseFrame) -> bool:
        """Take one frame in; True once the remote orchestrator has stopped."""
        if frame.id is not None:
            self._last_id = frame.id
        try:
            data = json.loads(frame.data)
        except ValueError:
            return False
        if frame.event == "resync":
            self.missed += int(data.get("missed", 0))
            self._stale.set()
            self.remote.triggers_watched.update(dict.fromkeys(self.remote.triggers, 0.0))
            return False
        event = event_from_json(data)
        if event is None:
            return False
        if isinstance(event, LogLine):
            self.remote.log_lines.append(
                LogRecordView(ts=event.ts, worker=event.worker, run_id=event.run_id,
                              level=event.level, message=event.message)
            )
        self._inbox.append(event)
        self._taken_count += 1
        self._patch(event)
        self._stale.set()
        if len(self._inbox) >= ANNOUNCE_AT or not self._announced:
            self._announce()
        if isinstance(event, OrchestratorStopped):
            self.stuck = event.stuck
            return True
        return False

    @property
    def events_waiting(self) -> bool:
        return bool(self._inbox) or self._fresh_snapshot

    def take_events(self) -> list[Event]:
        self._fresh_snapshot = False
        return super().take_events()

    # ------------------------------------------------------------------ snapshots

    async def _refresh_snapshots(self) -> None:
        loop = asyncio.get_running_loop()
        last, spacing = -float("inf"), SNAPSHOT_MIN_INTERVAL
        while True:
            try:
                async with asyncio.timeout(SNAPSHOT_IDLE_INTERVAL):
                    await self._stale.wait()
            except TimeoutError:
                pass
            # Spaced by what the last one cost (the node's JSON and ours), so that a big
            # table takes at most about a fifth of either thread.
            await asyncio.sleep(max(0.0, last + spacing - loop.time()))
            last = loop.time()
            self._stale.clear()
            try:
                await self._fetch_snapshot()
                await self._fetch_watched_triggers()
            except (OSError, LookupError):
                pass  # the event stream notices a node that has gone
            spacing = max(SNAPSHOT_MIN_INTERVAL, SNAPSHOT_SHARE * (loop.time() - last))

    def _patch(self, event: Event, *, ahead: bool = False) -> None:
        """Show what a pause, a resume or an operator's enable or disable changed at
        once, ahead of the next snapshot: a key's effect should not wait for a fetch.

        `ahead`: the event is expected (the request is on its way), not yet taken: the
        change holds until a fetch that began after the next event.
        """
        change = _snapshot_change(event)
        if change is None or self.remote.latest is None:
            return
        self._patches.append((self._taken_count + ahead, change))
        self.remote.latest = change(self.remote.latest)
        self._fresh_snapshot = True

    async def _fetch_snapshot(self) -> None:
        taken_before = self._taken_count
        body = await self.remote._get("/status?detail=full")
        snapshot = snapshot_from_json(body, self.remote.specs)
        # Changes from events that came while the fetch was under way may be missing
        # from what it read: applied again (they are idempotent), until a later fetch.
        self._patches = [(n, change) for n, change in self._patches if n > taken_before]
        for _, change in self._patches:
            snapshot = change(snapshot)
        self.remote.latest = snapshot
        # Shown at the app's next refresh tick (`events_waiting`), not announced: a
        # message would only absorb events, and it is the tick that redraws.
        self._fresh_snapshot = True

    async def _fetch_logs(self) -> None:
        body = await self.remote._get(f"/logs?limit={LOG_LINES_KEPT}")
        self.remote.log_lines.extend(log_line_from_json(line) for line in body["lines"])

    async def _fetch_watched_triggers(self) -> None:
        now = time.monotonic()
        for worker, asked in list(self.remote.triggers_watched.items()):
            if now - asked > TRIGGERS_WATCHED_S:
                del self.remote.triggers_watched[worker]
                self.remote.triggers.pop(worker, None)
                continue
            body = await self.remote._get(f"/workers/{_quote(worker)}/triggers")
            self.remote.triggers[worker] = [trigger_from_json(t) for t in body["triggers"]]

    # ------------------------------------------------------------------ reads, control

    def read(self, fn: Callable[..., Awaitable[T]], *args: Any) -> asyncio.Future[T]:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        if not self.running:
            future.set_exception(CoreNotRunning("not attached"))
            return future

        async def run() -> None:
            try:
                result = await fn(*args)
            except OSError as exc:
                if not future.done():
                    future.set_exception(CoreNotRunning(str(exc)))
            except Exception as exc:
                if not future.done():
                    future.set_exception(exc)
            else:
                if not future.done():
                    future.set_result(result)

        self._spawn(run())
        return future

    async def settle(self) -> None:
        await asyncio.sleep(0)

    def control(self, action: str, *args: Any) -> bool:
        if not self.running:
            return False
        if action == "stop":
            self.close()
            return True
        route = _CONTROL.get(action)
        if route is None:
            return False
        method, path = route(*args)
        expected = _EXPECTED.get(action)
        if expected is not None:
            # Shown at once, as the local dashboard shows it: what the node will say.
            self._patch(expected(*args), ahead=True)
        has_body = action == "trigger" and len(args) > 1
        body = args[1] if has_body else None
        self._spawn(self._send_control(action, method, path, body, has_body))
        return True

    async def _send_control(
        self, action: str, method: str, path: str, body: Any, has_body: bool
    ) -> None:
        try:
            status, answer = await self.remote.client.request(
                method, path, body, has_body=has_body
            )
        except RemoteError as exc:
            status, answer = 0, {"error": str(exc)}
        if status >= 400 or status == 0:
            error = answer.get("error") if isinstance(answer, dict) else str(answer)
            self._inbox.append(
                ControlFailed(ts=datetime.now(UTC), action=action, error=str(error))
            )
            self._announce()
        self._stale.set()

    def reload_config(self) -> asyncio.Future[ReloadResult]:
        return self.read(self._reload)

    async def _reload(self) -> ReloadResult:
        status, body = await self.remote.client.request("POST", "/reload")
        if status == 200:
            return ReloadResult(**{key: tuple(value) for key, value in body.items()})
        if status == 400:
            raise ConfigError(list(body.get("problems") or [body.get("error", "refused")]))
        raise ConfigError([str(body.get("error") if isinstance(body, dict) else body)])


def _now() -> datetime:
    return datetime.now(UTC)


#: Control actions whose effect the dashboard shows before the node confirms it: the
#: event the node will publish.
_EXPECTED: dict[str, Callable[..., Event]] = {
    "pause": lambda: OrchestratorPaused(ts=_now()),
    "resume": lambda: OrchestratorResumed(ts=_now()),
    "enable": lambda name: WorkerEnabled(ts=_now(), worker=name, reason="enabled by operator"),
    "disable": lambda name: WorkerDisabled(
        ts=_now(), worker=name, reason="disabled by operator"
    ),
}


def _snapshot_change(
    event: Event,
) -> Callable[[OrchestratorSnapshot], OrchestratorSnapshot] | None:
    if isinstance(event, OrchestratorPaused | OrchestratorResumed):
        to, frm = (
            (OrchestratorState.PAUSED, OrchestratorState.RUNNING)
            if isinstance(event, OrchestratorPaused)
            else (OrchestratorState.RUNNING, OrchestratorState.PAUSED)
        )
        return lambda snap: attrs.evolve(snap, state=to) if snap.state == frm else snap
    if isinstance(event, WorkerDisabled | WorkerEnabled) and event.reason.endswith("operator"):
        enabled = isinstance(event, WorkerEnabled)

        def set_enabled(snap: OrchestratorSnapshot) -> OrchestratorSnapshot:
            workers = tuple(
                _enabled(w, enabled) if w.name == event.worker else w for w in snap.workers
            )
            return attrs.evolve(snap, workers=workers)

        return set_enabled
    return None


def _enabled(w: WorkerSnapshot, enabled: bool) -> WorkerSnapshot:
    if enabled:
        idle = w.state if w.state != WorkerStatus.DISABLED else WorkerStatus.IDLE
        return attrs.evolve(w, enabled=True, may_run=True, circuit=Circuit.CLOSED,
                            consecutive_failures=0, state=idle)
    busy = w.state in (WorkerStatus.RUNNING, WorkerStatus.STUCK, WorkerStatus.RETRYING)
    return attrs.evolve(w, enabled=False, may_run=False,
                        state=w.state if busy else WorkerStatus.DISABLED,
                        reason=w.reason if busy else "disabled")


async def check_attachable(client: HttpClient) -> str | None:
    """None if `client` reaches a jobdeck and its token is accepted; else what is wrong."""
    try:
        status, body = await client.request("GET", "/status")
        if status != 200:
            return f"{client.base_url}/status answered {status}"
        status, body = await client.request("GET", "/runs?limit=1")
    except RemoteError as exc:
        return f"cannot reach {client.base_url}: {exc}"
    if status == 401:
        return (f"{client.base_url} refused the token ({body.get('error', '')}): set "
                "JOBDECK_API_TOKEN or pass --token-file")
    if status != 200:
        return f"{client.base_url}/runs answered {status}"
    return None


__all__ = [
    "HttpClient",
    "RemoteBridge",
    "RemoteError",
    "RemoteOrchestrator",
    "check_attachable",
    "event_from_json",
    "snapshot_from_json",
]
