"""The HTTP API of a headless orchestrator: its starlette app (served by `_http_server`).

`GET` endpoints read frozen snapshots and need no token, except `GET /events` (it
carries payloads and log lines); every `POST` and `DELETE` needs
`Authorization: Bearer TOKEN`. Every answer is JSON (the metrics excepted), errors
included: `{"error": "..."}`, never a traceback.

| endpoint | answers |
|---|---|
| `GET /healthz` | 200 ok/degraded and running or paused, else 503; with the reasons |
| `GET /livez` | 200 while the process answers at all (for liveness probes) |
| `GET /status` | 200: the orchestrator and every worker |
| `GET /metrics` | 200: Prometheus text |
| `GET /events` | 200: Server-Sent Events (`_event_stream`); token needed |
| `GET /runs?worker=&limit=` | 200: recent runs, newest first; token needed |
| `GET /logs`, `GET /workers/{name}/logs` (`?limit=`) | 200: log lines, oldest first; token needed |
| `GET /workers/{name}/triggers` | 200: pending triggers, oldest first; token needed |
| `POST /workers/{name}/trigger` | 202 `trigger_id` once stored; 400 bad JSON, 413 too big |
| `POST /workers/{name}/enable`, `/disable` | 200 |
| `POST /pause`, `POST /resume` | 200 |
| `GET /dlq`, `GET /dlq/{id}` | 200: entries (the list without tracebacks) |
| `POST /dlq/{id}/replay` | 202 `trigger_id`; 409 if the entry's worker is gone |
| `DELETE /dlq/{id}`, `DELETE /dlq` (purge) | 200 |
| `POST /reload` | 200 with what changed; 400 with the config's problems (nothing changed) |
| `GET /cluster` | 200: the cluster's nodes and slots; 404 in local mode |
| `GET /cluster/leases` | 200: every live lease of the cluster; 404 in local mode |
| `POST /cluster/nodes/{name}/drain`, `/undrain` | 200; 404 for an unknown node |

401 without or with a wrong token, 404 for unknown workers, entries and routes, 405 for
a wrong method, 503 while the orchestrator is not running or its store fails, 500 (with
the traceback on stderr only) for a bug.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, Mapping
from contextlib import aclosing
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from ._errors import ConfigError, NotRunning, StoreError, UnknownDeadLetter, UnknownWorker
from ._event_stream import EventStream, StreamClient
from ._health import Health
from ._json_views import (
    check_dead_letter_id,
    dead_letter_json,
    log_line_json,
    run_json,
    status_json,
    trigger_json,
)
from ._metrics import Metrics
from ._orchestrator import Orchestrator
from ._snapshot import OrchestratorState

#: Largest trigger payload accepted, in bytes of JSON.
MAX_BODY_BYTES = 64 * 1024
DLQ_DEFAULT_LIMIT = 100
DLQ_MAX_LIMIT = 10_000
RUNS_DEFAULT_LIMIT = 50
LOGS_DEFAULT_LIMIT = 200

Endpoint = Callable[[Request], Awaitable[Response]]

#: Reads that need the token all the same: they carry payloads and worker log lines.
#: (`/dlq` predates this and stays open.)
_GUARDED_READS = frozenset(
    {"/events", "/runs", "/logs", "/workers/{name}/logs", "/workers/{name}/triggers"}
)


# ---------------------------------------------------------------------- the app


class _Problem(Exception):
    """An error answer: its status, message and extra headers."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


def create_app(
    orch: Orchestrator,
    *,
    token: str,
    metrics: Metrics | None = None,
    event_stream: EventStream | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
) -> Starlette:
    """The ASGI app of the API for `orch`.

    Args:
        orch: the orchestrator to serve (running, or about to run).
        token: the bearer token every POST and DELETE must carry.
        metrics: the registry `/metrics` renders; by default a new one (whose event
            counters count only if its `run` task runs).
        event_stream: what `/events` streams; by default a new one (which streams only
            if its `run` task runs).
        max_body_bytes: the largest trigger payload accepted.
    """
    api = _Api(
        orch, token, metrics if metrics is not None else Metrics(orch),
        event_stream if event_stream is not None else EventStream(orch), max_body_bytes,
    )
    app = Starlette(
        routes=api.routes(),
        exception_handlers={
            HTTPException: _http_exception,
            _Problem: _problem,
            UnknownWorker: _not_found,
            UnknownDeadLetter: _not_found,
            NotRunning: _unavailable,
            StoreError: _unavailable,
            Exception: _internal_error,
        },
    )
    # An API answers `/dlq/` with 404, not a redirect that curl would not follow.
    app.router.redirect_slashes = False
    return app


class _Api:
    def __init__(
        self, orch: Orchestrator, token: str, metrics: Metrics, stream: EventStream,
        max_body: int,
    ) -> None:
        self._orch = orch
        self._token = token.encode()
        self._metrics = metrics
        self._stream = stream
        self._max_body = max_body

    def routes(self) -> list[Route]:
        table: list[tuple[str, str, Endpoint]] = [
            ("GET", "/healthz", self.healthz),
            ("GET", "/livez", self.livez),
            ("GET", "/status", self.status),
            ("GET", "/metrics", self.metrics),
            ("GET", "/events", self.events),
            ("GET", "/runs", self.runs),
            ("GET", "/logs", self.logs),
            ("GET", "/workers/{name}/logs", self.logs),
            ("GET", "/workers/{name}/triggers", self.triggers),
            ("POST", "/workers/{name}/trigger", self.trigger),
            ("POST", "/workers/{name}/enable", self.enable),
            ("POST", "/workers/{name}/disable", self.disable),
            ("POST", "/pause", self.pause),
            ("POST", "/resume", self.resume),
            ("GET", "/dlq", self.dlq_list),
            ("DELETE", "/dlq", self.dlq_purge),
            ("GET", "/dlq/{entry_id:int}", self.dlq_show),
            ("DELETE", "/dlq/{entry_id:int}", self.dlq_delete),
            ("POST", "/dlq/{entry_id:int}/replay", self.dlq_replay),
            ("POST", "/reload", self.reload),
            ("GET", "/cluster", self.cluster),
            ("GET", "/cluster/leases", self.cluster_leases),
            ("POST", "/cluster/nodes/{name}/drain", self.drain),
            ("POST", "/cluster/nodes/{name}/undrain", self.undrain),
        ]
        by_path: dict[str, dict[str, Endpoint]] = {}
        for method, path, endpoint in table:
            open_read = method == "GET" and path not in _GUARDED_READS
            guarded = endpoint if open_read else self._guarded(endpoint)
            by_path.setdefault(path, {})[method] = guarded
        # One route per path, so a wrong method's 405 lists every allowed one.
        return [
            Route(path, _by_method(endpoints), methods=list(endpoints))
            for path, endpoints in by_path.items()
        ]

    def _guarded(self, endpoint: Endpoint) -> Endpoint:
        async def guarded(request: Request) -> Response:
            self._authorize(request)
            return await endpoint(request)

        return guarded

    def _authorize(self, request: Request) -> None:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        challenge = {"WWW-Authenticate": 'Bearer realm="jobdeck"'}
        if scheme.lower() != "bearer" or not given.strip():
            raise _Problem(401, "missing token: send 'Authorization: Bearer TOKEN'", challenge)
        if not hmac.compare_digest(given.strip().encode(), self._token):
            raise _Problem(401, "wrong token", challenge)

    # ------------------------------------------------------------------ reading

    async def healthz(self, request: Request) -> Response:
        snap = self._orch.snapshot()
        live = snap.state in (OrchestratorState.RUNNING, OrchestratorState.PAUSED)
        reasons = list(snap.health_reasons)
        if not live:
            reasons.insert(0, f"orchestrator is {snap.state}")
        body = {
            "health": snap.health,
            "state": snap.state,
            "reasons": reasons,
            "workers": {
                w.name: {"health": w.health, "reasons": list(w.health_reasons)}
                for w in snap.workers
                if w.health is not Health.OK
            },
        }
        return _json(body, 200 if live and snap.health.serving else 503)

    async def livez(self, request: Request) -> Response:
        return _json({"alive": True})

    async def status(self, request: Request) -> Response:
        detail = request.query_params.get("detail") == "full"
        return _json(status_json(self._orch.snapshot(), self._orch.http_address, detail=detail))

    async def runs(self, request: Request) -> Response:
        worker = request.query_params.get("worker") or None
        limit = _limit(request.query_params.get("limit"), default=RUNS_DEFAULT_LIMIT)
        return _json({"runs": [run_json(r) for r in await self._orch.history(worker, limit)]})

    async def logs(self, request: Request) -> Response:
        worker = request.path_params.get("name")
        limit = _limit(request.query_params.get("limit"), default=LOGS_DEFAULT_LIMIT)
        return _json({"lines": [log_line_json(line) for line in self._orch.logs(worker, limit)]})

    async def triggers(self, request: Request) -> Response:
        pending = self._orch.pending_triggers(request.path_params["name"])
        return _json({"triggers": [trigger_json(t) for t in pending]})

    async def metrics(self, request: Request) -> Response:
        body, content_type = self._metrics.render(request.headers.get("accept"))
        return Response(body, media_type=content_type)

    async def events(self, request: Request) -> Response:
        return _EventStreamResponse(self._stream.connect(request.headers.get("last-event-id")))

    async def dlq_list(self, request: Request) -> Response:
        limit = _limit(request.query_params.get("limit"))
        traceback = request.query_params.get("traceback") == "1"
        entries = await self._orch.dead_letters(limit)
        return _json(
            {
                "total": self._orch.snapshot().dlq_size,
                "entries": [dead_letter_json(e, traceback=traceback) for e in entries],
            }
        )

    async def dlq_show(self, request: Request) -> Response:
        entry = await self._orch.dead_letter(_entry_id(request))
        return _json(dead_letter_json(entry, traceback=True))

    async def cluster(self, request: Request) -> Response:
        from ._pg_view import cluster_status

        return _json(await cluster_status(self._coordinator()))

    async def cluster_leases(self, request: Request) -> Response:
        from ._pg_view import cluster_leases

        return _json({"leases": await cluster_leases(self._coordinator())})

    def _coordinator(self) -> Any:
        coordinator = self._orch.cluster
        if coordinator is None:
            raise _Problem(
                404, "not a cluster: this jobdeck runs alone on its own store"
                " (cluster mode is --store postgresql://...)"
            )
        return coordinator

    # ------------------------------------------------------------------ changing

    async def drain(self, request: Request) -> Response:
        return await self._node_state(request, "draining")

    async def undrain(self, request: Request) -> Response:
        return await self._node_state(request, "active")

    async def _node_state(self, request: Request, state: str) -> Response:
        """Drain a node (it claims no new run, finishes its own and stays up, idle) or
        let it claim again."""
        from ._pg_view import set_node_state

        name = request.path_params["name"]
        if not await set_node_state(self._coordinator(), name, state):
            raise _Problem(404, f"no node named {name!r} in the cluster")
        return _json({"node": name, "state": state})

    async def trigger(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in self._orch.worker_names:
            raise UnknownWorker(name)
        payload = await self._payload(request)
        try:
            trigger_id = await self._orch.trigger(name, payload)
        except ValueError as exc:
            raise _Problem(400, str(exc)) from None
        return _json({"trigger_id": trigger_id, "worker": name}, 202)

    async def enable(self, request: Request) -> Response:
        name = request.path_params["name"]
        await self._orch.enable(name)
        return _json({"worker": name, "enabled": True})

    async def disable(self, request: Request) -> Response:
        name = request.path_params["name"]
        await self._orch.disable(name)
        return _json({"worker": name, "enabled": False})

    async def pause(self, request: Request) -> Response:
        self._require_not_stopped()
        self._orch.pause()
        return _json({"paused": True})

    async def resume(self, request: Request) -> Response:
        self._require_not_stopped()
        self._orch.resume()
        return _json({"paused": False})

    async def dlq_replay(self, request: Request) -> Response:
        entry_id = _entry_id(request)
        entry = await self._orch.dead_letter(entry_id)
        try:
            trigger_id = await self._orch.replay(entry_id)
        except UnknownWorker as exc:
            raise _Problem(409, f"dead letter {entry_id} cannot be replayed: {exc}") from None
        return _json({"trigger_id": trigger_id, "worker": entry.worker, "dlq_id": entry_id}, 202)

    async def dlq_delete(self, request: Request) -> Response:
        entry_id = _entry_id(request)
        await self._orch.delete_dead_letter(entry_id)
        return _json({"deleted": entry_id})

    async def dlq_purge(self, request: Request) -> Response:
        return _json({"deleted": await self._orch.purge_dead_letters()})

    async def reload(self, request: Request) -> Response:
        if self._orch.config_path is None:
            raise _Problem(409, "no config file to reload: the workers were registered in Python")
        try:
            result = self._orch.reload_file()
        except ConfigError as exc:
            count = len(exc.problems)
            return _json(
                {
                    "error": f"config refused, nothing changed: {count} "
                    f"problem{'s' * (count != 1)}",
                    "problems": list(exc.problems),
                },
                400,
            )
        return _json(result.to_dict())

    # ------------------------------------------------------------------ helpers

    def _require_not_stopped(self) -> None:
        if self._orch.stopped:
            raise NotRunning("the orchestrator is stopped")

    async def _payload(self, request: Request) -> Any:
        """The request body as JSON (None when empty), read no further than the limit."""
        declared = request.headers.get("content-length", "")
        too_big = _Problem(413, f"payload too large: the limit is {self._max_body} bytes")
        if declared.isdigit() and int(declared) > self._max_body:
            raise too_big
        body = bytearray()
        async with aclosing(request.stream()) as chunks:
            async for chunk in chunks:
                body += chunk
                if len(body) > self._max_body:
                    raise too_big
        if not body.strip():
            return None
        try:
            return json.loads(bytes(body), parse_constant=_reject_constant)
        except (ValueError, RecursionError) as exc:
            raise _Problem(400, f"payload is not valid JSON: {exc}") from None


class _EventStreamResponse(StreamingResponse):
    """Streams one client's events, and lets go of the client however the stream ends
    (a disconnect cancels the response mid-stream)."""

    def __init__(self, client: StreamClient) -> None:
        super().__init__(
            client,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
        self._client = client

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._client.close()


def _by_method(endpoints: dict[str, Endpoint]) -> Endpoint:
    if len(endpoints) == 1:
        return next(iter(endpoints.values()))

    async def dispatch(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        return await endpoints[method](request)

    return dispatch


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _entry_id(request: Request) -> int:
    entry_id: int = request.path_params["entry_id"]
    return check_dead_letter_id(entry_id)


def _limit(text: str | None, *, default: int = DLQ_DEFAULT_LIMIT) -> int:
    if text is None:
        return default
    if not text.isdigit() or not 1 <= int(text) <= DLQ_MAX_LIMIT:
        raise _Problem(400, f"limit must be a whole number from 1 to {DLQ_MAX_LIMIT}")
    return int(text)


# ---------------------------------------------------------------------- JSON


def _json(
    data: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    body = json.dumps(data, default=str, ensure_ascii=False) + "\n"
    return Response(body, status_code=status, headers=headers, media_type="application/json")


# ---------------------------------------------------------------------- error answers


async def _problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, _Problem)
    return _json({"error": exc.message}, exc.status, exc.headers)


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        message = f"not found: {request.method} {request.url.path}"
    elif exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        message = f"method {request.method} not allowed on {request.url.path}; use {allowed}"
    else:
        message = str(exc.detail)
    return _json({"error": message}, exc.status_code, exc.headers)


async def _not_found(request: Request, exc: Exception) -> Response:
    return _json({"error": str(exc)}, 404)


async def _unavailable(request: Request, exc: Exception) -> Response:
    return _json({"error": str(exc)}, 503, {"Retry-After": "5"})


async def _internal_error(request: Request, exc: Exception) -> Response:
    # Starlette re-raises after this answer, so hypercorn logs the traceback on stderr.
    return _json({"error": f"internal error: {type(exc).__name__}"}, 500)
