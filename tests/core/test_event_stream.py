"""`GET /events`: Server-Sent Events, resumable, bounded per client, in virtual time."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio
import trio.testing

from jobdeck import Orchestrator
from jobdeck._event_stream import EventStream
from jobdeck._http_app import create_app
from jobdeck._http_server import ApiServer
from jobdeck._metrics import Metrics
from tests.core.test_http import AUTH, TOKEN, call, orchestrator


@attrs.frozen
class Frame:
    id: int
    event: str
    data: dict[str, Any]


class Stream:
    """One `GET /events` in progress: the response head, then frames as they are read."""

    def __init__(self, chunks: trio.MemoryReceiveChannel[dict[str, Any]]) -> None:
        self._chunks = chunks
        self._text = ""
        self.status = 0
        self.headers: dict[str, str] = {}
        self.ended = False

    async def start(self) -> None:
        head = await self._chunks.receive()
        self.status = head["status"]
        self.headers = {k.decode(): v.decode() for k, v in head["headers"]}

    async def frame(self) -> Frame:
        """The next event frame (retry hints and keep-alive comments are skipped)."""
        with trio.fail_after(60):  # keep-alives never let a virtual clock stand still
            return await self._frame()

    async def _frame(self) -> Frame:
        while True:
            while "\n\n" not in self._text:
                message = await self._chunks.receive()
                self._text += message.get("body", b"").decode()
                if not message.get("more_body", False):
                    self.ended = True
                    raise EOFError("the stream ended")
            block, self._text = self._text.split("\n\n", 1)
            fields = dict(
                line.split(": ", 1) for line in block.splitlines() if not line.startswith(":")
            )
            if "event" in fields:
                return Frame(int(fields["id"]), fields["event"], json.loads(fields["data"]))

    async def frames(self, count: int) -> list[Frame]:
        return [await self.frame() for _ in range(count)]


@asynccontextmanager
async def events_of(
    app: Any, headers: dict[str, str] | None = None
) -> AsyncIterator[Stream]:
    """`GET /events` into the ASGI app; the client reads only when the test asks (a send
    waits for it, as a slow socket does), and disconnects at the end of the block."""
    send_chunk, chunks = trio.open_memory_channel[dict[str, Any]](0)
    gone = trio.Event()
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": "/events", "raw_path": b"/events", "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
        "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8765),
    }
    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        await send_chunk.send(message)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(app, scope, receive, send)
        stream = Stream(chunks)
        await stream.start()
        try:
            yield stream
        finally:
            gone.set()
            nursery.cancel_scope.cancel()


@asynccontextmanager
async def serving_events(orch: Orchestrator, **options: Any) -> AsyncIterator[Any]:
    """The API app of `orch` with its event stream (numbered from 1) running."""
    stream = EventStream(orch, first_seq=1, **options)
    app = create_app(orch, token=TOKEN, metrics=Metrics(orch, process=False), event_stream=stream)
    async with trio.open_nursery() as nursery:
        await nursery.start(stream.run)
        await nursery.start(orch.run)
        try:
            yield app, stream
        finally:
            orch.stop(grace=0)


async def trigger_echo(app: Any, times: int = 1) -> None:
    for _ in range(times):
        reply = await call(app, "POST", "/workers/echo/trigger", headers=AUTH)
        assert reply.status == 202


async def test_events_need_the_token(autojump_clock: Any) -> None:
    """Unlike other reads, /events answers 401 without the token (payloads, log lines)."""
    async with serving_events(orchestrator()) as (app, _):
        reply = await call(app, "GET", "/events")
    assert reply.status == 401


async def test_frames_carry_id_name_and_the_json_log_line(autojump_clock: Any) -> None:
    """Each frame: `id: SEQ`, `event: NAME`, `data:` the --log-format json object."""
    async with serving_events(orchestrator()) as (app, _):
        async with events_of(app, AUTH) as stream:
            assert stream.status == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            await trigger_echo(app)
            frames = await stream.frames(3)
    assert [f.event for f in frames] == ["trigger_accepted", "run_started", "run_succeeded"]
    assert [f.id for f in frames] == [frames[0].id, frames[0].id + 1, frames[0].id + 2]
    assert all(f.data["event"] == f.event and f.data["worker"] == "echo" for f in frames)
    assert {"ts", "trigger_id", "source"} <= frames[0].data.keys()


async def test_last_event_id_resumes_from_the_ring(autojump_clock: Any) -> None:
    """A client reconnecting with Last-Event-ID gets exactly the events it missed."""
    async with serving_events(orchestrator()) as (app, _):
        async with events_of(app, AUTH) as stream:
            await trigger_echo(app)
            seen = await stream.frames(3)
        await trigger_echo(app, 2)
        await trio.testing.wait_all_tasks_blocked()
        resumed_from = {**AUTH, "Last-Event-ID": str(seen[-1].id)}
        async with events_of(app, resumed_from) as stream:
            missed = await stream.frames(6)
            await trigger_echo(app)
            live = await stream.frame()
    assert [f.id for f in missed] == list(range(seen[-1].id + 1, seen[-1].id + 7))
    assert sorted(f.event for f in missed) == sorted(
        ["trigger_accepted", "run_started", "run_succeeded"] * 2
    )
    assert (live.id, live.event) == (missed[-1].id + 1, "trigger_accepted")


async def test_a_slow_client_loses_events_and_gets_a_resync(autojump_clock: Any) -> None:
    """A client whose queue is full loses events (counted) and gets `resync` at the gap,
    then the live events again."""
    async with serving_events(orchestrator(), client_buffer=2) as (app, events):
        async with events_of(app, AUTH) as stream:
            await trigger_echo(app, 3)  # 9 events; the client reads none meanwhile
            await trio.testing.wait_all_tasks_blocked()
            before_gap = await stream.frames(2)
            resync = await stream.frame()
            await trigger_echo(app)
            after = await stream.frame()
    # Two frames waited in the client's queue; the seven after them were lost.
    first = before_gap[0].id
    assert [f.id for f in before_gap] == [first, first + 1]
    assert resync.event == "resync"
    assert resync.data == {"event": "resync", "missed": 7, "last_id": first + 8}
    assert resync.id == first + 8
    assert events.dropped == 7
    assert (after.id, after.event) == (first + 9, "trigger_accepted")


async def test_a_last_event_id_older_than_the_ring_gets_a_resync(autojump_clock: Any) -> None:
    """Events the ring no longer holds cannot be replayed: the client is told to resync."""
    async with serving_events(orchestrator(), ring_size=3) as (app, _):
        await trigger_echo(app, 3)
        await trio.testing.wait_all_tasks_blocked()
        async with events_of(app, {**AUTH, "Last-Event-ID": "1"}) as stream:
            resync = await stream.frame()
            await trigger_echo(app)
            live = await stream.frame()
    # Events 1 (orchestrator_started) to 10; the ring holds 8 to 10: 2 to 7 are lost.
    assert (resync.event, resync.id, resync.data["missed"]) == ("resync", 10, 6)
    assert (live.id, live.event) == (11, "trigger_accepted")


async def test_a_last_event_id_from_another_process_gets_a_resync(autojump_clock: Any) -> None:
    """An id past the latest (a restarted jobdeck numbers afresh) asks for a resync."""
    async with serving_events(orchestrator()) as (app, _):
        async with events_of(app, {**AUTH, "Last-Event-ID": "999999"}) as stream:
            resync = await stream.frame()
    assert resync.event == "resync"


async def test_the_stream_ends_when_the_orchestrator_stops(autojump_clock: Any) -> None:
    """Once the orchestrator has stopped the stream ends after its last events."""
    orch = orchestrator()
    async with serving_events(orch) as (app, _):
        async with events_of(app, AUTH) as stream:
            orch.stop(grace=0)
            names = []
            try:
                while True:
                    names.append((await stream.frame()).event)
            except EOFError:
                pass
    assert names[-1] == "orchestrator_stopped"
    assert stream.ended


def read_sse(url: str, lines: int) -> list[str]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return [response.readline().decode().rstrip("\n") for _ in range(lines)]


async def test_events_over_a_real_socket() -> None:
    """Served by hypercorn's trio worker, /events streams frames as they happen."""
    orch = orchestrator()
    server = ApiServer(orch, "127.0.0.1:0", token=TOKEN, graceful_timeout=1)
    async with trio.open_nursery() as nursery:
        address = await nursery.start(server.serve)
        await nursery.start(orch.run)

        async def trigger_soon() -> None:
            await trio.sleep(0.3)
            await orch.trigger("echo")

        nursery.start_soon(trigger_soon)
        lines = await trio.to_thread.run_sync(read_sse, f"http://{address}/events", 5)
        orch.stop(grace=0)
        await orch.wait_stopped()
        server.close()
    assert lines[:2] == ["retry: 1000", ""]
    assert lines[2].startswith("id: ")
    assert lines[3] == "event: trigger_accepted"
    assert json.loads(lines[4].removeprefix("data: "))["worker"] == "echo"
