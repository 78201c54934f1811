"""End-to-end tests: the real `jobdeck` command in a subprocess, with bounded waits."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def jobdeck_command() -> list[str]:
    """The installed console script, next to this interpreter if possible."""
    beside = Path(sys.executable).with_name("jobdeck")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("jobdeck")
    if found:
        return [found]
    return [sys.executable, "-m", "jobdeck"]


class Jobdeck:
    """A running `jobdeck` process whose stdout lines are read as they come."""

    def __init__(self, args: list[str], cwd: Path, repo_on_path: bool = True) -> None:
        env = dict(os.environ, NO_COLOR="1")
        if repo_on_path:
            env["PYTHONPATH"] = str(REPO)
        else:
            env.pop("PYTHONPATH", None)
        self.proc = subprocess.Popen(
            [*jobdeck_command(), *args],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def events(self) -> list[dict]:
        return [json.loads(line) for line in list(self.lines) if line.startswith("{")]

    def wait_for(self, predicate, timeout: float = 20.0) -> list[dict]:
        """Poll the event lines until `predicate(events)` is true (bounded)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            events = self.events()
            if predicate(events):
                return events
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        events = self.events()
        if predicate(events):
            return events
        raise AssertionError(f"timed out; last events: {events[-5:]}; stderr: {self.stderr()}")

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 20.0) -> int:
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return code

    def stderr(self) -> str:
        if self.proc.poll() is None or self.proc.stderr is None:
            return ""
        return self.proc.stderr.read()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def start_jobdeck(tmp_path: Path) -> Iterator:
    started: list[Jobdeck] = []

    def start(*args: str, cwd: Path = REPO, repo_on_path: bool = True) -> Jobdeck:
        process = Jobdeck(list(args), cwd, repo_on_path)
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()
        process._reader.join(timeout=5)
        for stream in (process.proc.stdout, process.proc.stderr):
            if stream is not None:
                stream.close()


def run_jobdeck(*args: str, timeout: float = 30.0, input: str | None = None,
                cwd: Path = REPO, repo_on_path: bool = True) -> subprocess.CompletedProcess[str]:
    """Run `jobdeck ARGS` to completion and capture its output.

    `repo_on_path`: put the repository on PYTHONPATH (so configs can name the test
    workers); off, jobdeck sees only what a user's installation would.
    """
    env = dict(os.environ, NO_COLOR="1")
    if repo_on_path:
        env["PYTHONPATH"] = str(REPO)
    else:
        env.pop("PYTHONPATH", None)
    return subprocess.run(
        [*jobdeck_command(), *args], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=timeout, input=input,
    )
