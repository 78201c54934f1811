"""`GET /events`: the orchestrator's events as Server-Sent Events, for remote dashboards.

One task subscribes to the orchestrator, numbers each event (its sequence number is the
frame's `id`), keeps the latest in a bounded ring and hands each to every client's own
bounded queue. A frame is the `--log-format json` line of the event::

    id: 1042
    event: run_succeeded
    data: {"ts": "...", "event": "run_succeeded", "worker": "fetch", ...}

A client that reconnects with `Last-Event-ID: N` gets the events after N from the ring,
then the live ones. A client that falls behind (its queue is full), or asks for events
the ring no longer holds, loses them (counted) and gets a `resync` frame where the gap
is: it should read `GET /status` again, then go on with the frames that follow.
Sequence numbers start from the wall clock in microseconds, so the ids of a restarted
jobdeck are past those of the one before: an old `Last-Event-ID` asks for a resync,
never for someone else's events.
"""

from __future__ import annotations

import json
import time
from collections import deque

import attrs
import trio

from ._logformat import json_line
from ._orchestrator import Orchestrator

#: Recent events kept for clients that resume with `Last-Event-ID`.
RING_SIZE = 10_000
#: Frames one client may have waiting; past this it loses events and is told to resync.
CLIENT_BUFFER = 1_000
#: Events the stream's own subscription may queue before the orchestrator drops some.
SUBSCRIPTION_BUFFER = 10_000
#: Seconds of silence before a comment line keeps the connection (and proxies) alive.
KEEPALIVE_S = 15.0


@attrs.frozen
class Frame:
    """One event, numbered, as the JSON text of its log line."""

    seq: int
    name: str
    data: str

    def encode(self) -> bytes:
        return f"id: {self.seq}\nevent: {self.name}\ndata: {self.data}\n\n".encode()


class StreamClient:
    """One client's stream: an async iterator of SSE chunks; `close()` it when done.

    What is owed before the live events (a resumed client's missed frames, or a resync)
    comes first; then each live frame, a `resync` frame where events were lost, and a
    keep-alive comment after `KEEPALIVE_S` of silence. It ends after the last event.
    """

    def __init__(self, stream: EventStream, buffer: int, opening: list[bytes]) -> None:
        self._stream = stream
        self.send, self.receive = trio.open_memory_channel[Frame](buffer)
        self._opening = opening
        #: events lost since the last resync frame (a gap is open while > 0).
        self.missed = 0

    def __aiter__(self) -> StreamClient:
        return self

    async def __anext__(self) -> bytes:
        if self._opening:
            return self._opening.pop(0)
        try:
            frame: Frame | None = self.receive.receive_nowait()
        except trio.WouldBlock:
            frame = None
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise StopAsyncIteration from None
        if frame is None and self.missed:
            # Everything from before the gap is out: now the gap itself.
            missed, self.missed = self.missed, 0
            return self._stream.resync(missed)
        if frame is None:
            with trio.move_on_after(KEEPALIVE_S):
                try:
                    frame = await self.receive.receive()
                except (trio.EndOfChannel, trio.ClosedResourceError):
                    raise StopAsyncIteration from None
            if frame is None:
                return b": keepalive\n\n"
        return frame.encode()

    def close(self) -> None:
        """The client has gone: stop feeding it."""
        self._stream.disconnect(self)
        self.send.close()


class EventStream:
    """Numbers the orchestrator's events, keeps the latest, and feeds each client.

    Run `run` in a nursery (the API server does) for as long as clients may connect.

    Args:
        orch: the orchestrator whose events are streamed.
        first_seq: the first event's sequence number; by default the wall clock in
            microseconds (ids of a later process are larger).
        ring_size: recent events kept for resuming clients.
        client_buffer: frames one client may have waiting.
    """

    def __init__(
        self,
        orch: Orchestrator,
        *,
        first_seq: int | None = None,
        ring_size: int = RING_SIZE,
        client_buffer: int = CLIENT_BUFFER,
    ) -> None:
        self._orch = orch
        self._next_seq = first_seq if first_seq is not None else time.time_ns() // 1000
        self._ring: deque[Frame] = deque(maxlen=ring_size)
        self._client_buffer = client_buffer
        self._clients: set[StreamClient] = set()
        self._ended = False
        #: events lost by slow clients, over all clients.
        self.dropped = 0

    @property
    def last_seq(self) -> int:
        """The sequence number of the latest event (one less than the first, before any)."""
        return self._next_seq - 1

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Number and hand out events until the orchestrator closes its event bus."""
        with self._orch.subscribe(SUBSCRIPTION_BUFFER) as events:
            task_status.started()
            lost = 0
            async for event in events:
                if events.dropped != lost:
                    # The orchestrator dropped some of ours: every client has a gap.
                    for client in self._clients:
                        client.missed += events.dropped - lost
                    lost = events.dropped
                self._publish(Frame(self._next_seq, event.name, json_line(event)))
                self._next_seq += 1
        self._ended = True
        for client in self._clients:
            client.send.close()

    def _publish(self, frame: Frame) -> None:
        self._ring.append(frame)
        for client in self._clients:
            if client.missed:
                # A gap is open: nothing more until the client has had its resync.
                client.missed += 1
                self.dropped += 1
                continue
            try:
                client.send.send_nowait(frame)
            except trio.WouldBlock:
                client.missed = 1
                self.dropped += 1

    def connect(self, last_event_id: str | None = None) -> StreamClient:
        """A new client's stream: the events after `last_event_id` from the ring (or a
        `resync` frame if the ring no longer has them all), then the live events."""
        # Worked out and registered in one step: no event falls between ring and queue.
        client = StreamClient(
            self, self._client_buffer, [b"retry: 1000\n\n", *self._resume(last_event_id)]
        )
        if self._ended:
            client.send.close()
        else:
            self._clients.add(client)
        return client

    def disconnect(self, client: StreamClient) -> None:
        self._clients.discard(client)

    def _resume(self, last_event_id: str | None) -> list[bytes]:
        """What a client resuming after `last_event_id` is owed before the live events:
        the ring's frames after it, or a resync if the ring does not hold them all."""
        if last_event_id is None:
            return []
        try:
            after = int(last_event_id.strip())
        except ValueError:
            return [self.resync(0)]
        last = self.last_seq
        if after == last:
            return []
        oldest = self._ring[0].seq if self._ring else self._next_seq
        if after > last or after + 1 < oldest:
            # From another process (or the future), or older than the ring: refetch.
            missed = max(0, oldest - after - 1) if after < last else 0
            return [self.resync(missed)]
        return [frame.encode() for frame in self._ring if frame.seq > after]

    def resync(self, missed: int) -> bytes:
        """A `resync` frame: `missed` events were lost; read `GET /status` again."""
        data = json.dumps({"event": "resync", "missed": missed, "last_id": self.last_seq})
        return f"id: {self.last_seq}\nevent: resync\ndata: {data}\n\n".encode()
