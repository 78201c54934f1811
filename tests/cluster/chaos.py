"""What the chaos test drives: real headless nodes in subprocesses, and a TCP proxy that
can blackhole one node's traffic to PostgreSQL.

Everything here runs on the real clock in plain threads (the nodes are other processes):
waits are on conditions, with generous bounds, never on sleeps that assume speed.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg

REPO = Path(__file__).resolve().parents[2]
#: The API token every node of the chaos test uses.
TOKEN = "chaos-token"


def wait_for(what: str, check: Callable[[], Any], within: float, interval: float = 0.05) -> Any:
    """Look at `check` until it returns something truthy (returned); fail after `within`."""
    deadline = time.monotonic() + within
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {within:g}s waiting for {what}")
        time.sleep(interval)


def sql(dsn: str, query: str, *args: Any) -> list[tuple[Any, ...]]:
    """Rows of one query on a connection of its own."""
    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
        cur = conn.execute(query, args or None)
        return cur.fetchall() if cur.description else []


class BlackholeProxy:
    """A loopback TCP proxy to `target`; `blackhole()` stops forwarding without closing
    anything (the peers see silence, as across a partition), `heal()` forwards again
    (what was sent meanwhile arrives late)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self._target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._flowing = threading.Event()
        self._flowing.set()
        self._closed = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True, name="proxy-accept").start()

    def blackhole(self) -> None:
        self._flowing.clear()

    def heal(self) -> None:
        self._flowing.set()

    def close(self) -> None:
        self._closed.set()
        self._flowing.set()
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                sock.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._pair, args=(client,), daemon=True).start()

    def _pair(self, client: socket.socket) -> None:
        self._flowing.wait()  # a connection made during the blackhole hangs until it heals
        try:
            upstream = socket.create_connection(self._target)
        except OSError:
            client.close()
            return
        with self._lock:
            self._sockets += [client, upstream]
        self._pump(client, upstream)

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        peer = {a: b, b: a}
        with selectors.DefaultSelector() as sel:
            sel.register(a, selectors.EVENT_READ)
            sel.register(b, selectors.EVENT_READ)
            try:
                while not self._closed.is_set():
                    if not self._flowing.is_set():
                        self._flowing.wait(0.2)  # read nothing: it waits in the kernel
                        continue
                    for key, _ in sel.select(0.2):
                        src: socket.socket = key.fileobj  # type: ignore[assignment]
                        data = src.recv(65536)
                        if not data:
                            return
                        peer[src].sendall(data)
            except OSError:
                return
            finally:
                a.close()
                b.close()


def node_config(name: str, *, lease: float, witness_workers: str) -> str:
    """One node's config: the same workers everywhere, its own `[cluster]` name."""
    return f"""
[orchestrator]
max_concurrent_workers = 3
shutdown_grace_seconds = 5
history_per_worker = 100000

[cluster]
node_name = "{name}"
lease_seconds = {lease}

{witness_workers}
"""


class Node:
    """One headless jobdeck process (`python -m jobdeck --no-ui ...`), restartable."""

    def __init__(self, name: str, folder: Path, store_url: str, witness_dsn: str,
                 config: str) -> None:
        self.name = name
        self._folder = folder
        self._store_url = store_url
        self._witness = witness_dsn
        self.config_path = folder / f"{name}.toml"
        self.config_path.write_text(config)
        self.proc: subprocess.Popen[bytes] | None = None
        #: every incarnation's log file, oldest first.
        self.logs: list[Path] = []
        #: every incarnation's exit code (None: killed, not asked to stop).
        self.exits: list[int | None] = []
        self.port: int | None = None

    def start(self) -> None:
        log = self._folder / f"{self.name}.{len(self.logs)}.log"
        self.logs.append(log)
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO),
                                                        os.environ.get("PYTHONPATH")])),
            "JOBDECK_API_TOKEN": TOKEN,
            "JOBDECK_CHAOS_WITNESS": self._witness,
            "JOBDECK_CHAOS_NODE": self.name,
            "NO_COLOR": "1",
        }
        with log.open("wb") as out, (log.with_suffix(".err")).open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "jobdeck", "--no-ui", "--log-format", "json",
                 "--http", "127.0.0.1:0", "--store", self._store_url,
                 "--config", str(self.config_path)],
                stdout=out, stderr=err, cwd=REPO, env=env,
            )
        self.port = None

    def wait_started(self, within: float = 60.0) -> None:
        """Until this incarnation serves HTTP and joined the cluster."""
        def started() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited {self.proc.returncode}:"
                                     f" {self.stderr()[-2000:]}")
            events = self.events(-1)
            names = {e["event"] for e in events}
            for e in events:
                if e["event"] == "orchestrator_started" and e.get("http"):
                    self.port = int(str(e["http"]).rsplit(":", 1)[1].split("/")[0])
            return self.port is not None and "node_joined" in names

        wait_for(f"{self.name} to start", started, within)

    def stderr(self) -> str:
        return self.logs[-1].with_suffix(".err").read_text(errors="replace")

    def events(self, incarnation: int | None = None) -> list[dict[str, Any]]:
        """The JSON events of one incarnation (or all), in order."""
        logs = self.logs if incarnation is None else [self.logs[incarnation]]
        out = []
        for log in logs:
            for line in log.read_text(errors="replace").splitlines():
                if line.startswith("{"):
                    try:
                        out.append(json.loads(line))
                    except json.JSONDecodeError:
                        pass  # a line still being written
        return out

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(30)
        self.exits.append(None)

    def wait_exit(self, within: float = 60.0) -> int:
        """The exit code once it stopped (asked to by a signal already sent)."""
        assert self.proc is not None
        try:
            code = self.proc.wait(within)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(30)
            raise AssertionError(f"{self.name} did not stop within {within:g}s") from None
        self.exits.append(code)
        return code

    def status(self) -> dict[str, Any] | None:
        """`GET /status`, or None if it did not answer in time."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/status",
                                        timeout=5) as answer:
                return dict(json.loads(answer.read()))
        except (OSError, urllib.error.URLError, ValueError):
            return None

    def trigger(self, worker: str, payload: Any) -> str | None:
        """POST a trigger; its id once acknowledged (202), None if it was not."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/workers/{worker}/trigger",
            data=json.dumps(payload).encode(), method="POST",
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:
                if answer.status != 202:
                    return None
                return str(json.loads(answer.read())["trigger_id"])
        except (OSError, urllib.error.URLError, ValueError, KeyError):
            return None


def ts(event: dict[str, Any]) -> float:
    """An event's time as a Unix timestamp."""
    return datetime.fromisoformat(str(event["ts"]).replace("Z", "+00:00")).timestamp()
