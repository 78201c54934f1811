"""The real `jobdeck` dashboard in a real terminal (tmux): keys, quitting, signals."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .conftest import REPO, jobdeck_command

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]

WIDTH, HEIGHT = 140, 40

WORKERS = '''
from pathlib import Path

import trio


async def mark(ctx):
    """Write a marker file: proof that the run happened."""
    Path(ctx.params["path"]).write_text(f"{ctx.source} {ctx.run_id}\\n")


async def slow_mark(ctx):
    """Run for a while, then write a marker (only if not cancelled)."""
    await trio.sleep(ctx.params["seconds"])
    Path(ctx.params["path"]).write_text("finished\\n")
'''


def tmux(*args: str) -> str:
    return subprocess.run(
        ["tmux", *args], check=True, capture_output=True, text=True, timeout=10
    ).stdout


class Terminal:
    """A tmux session running one command; its screen, keys and files."""

    def __init__(self, folder: Path, args: list[str], size: tuple[int, int] = (WIDTH, HEIGHT)
                 ) -> None:
        self.folder = folder
        self.name = f"jobdeck-test-{uuid.uuid4().hex[:8]}"
        command = " ".join(shlex.quote(part) for part in [*jobdeck_command(), *args])
        script = folder / "run.sh"
        # The inner shell notes its pid, then becomes jobdeck (so SIGTERM reaches it);
        # the outer one records jobdeck's exit code.
        script.write_text(
            f"cd {shlex.quote(str(folder))}\n"
            # Size from the pane, not from COLUMNS/LINES a parent may have exported.
            "unset COLUMNS LINES\n"
            f"export PYTHONPATH={shlex.quote(str(REPO))}\n"
            f"sh -c 'echo $$ > pid; exec \"$@\"' sh {command}\n"
            "echo $? > rc.tmp && mv rc.tmp rc\n"
            "sleep 600\n"
        )
        tmux("new-session", "-d", "-s", self.name, "-x", str(size[0]), "-y", str(size[1]),
             f"sh {shlex.quote(str(script))}")

    def screen(self) -> str:
        return tmux("capture-pane", "-p", "-t", self.name)

    def press(self, *keys: str) -> None:
        tmux("send-keys", "-t", self.name, *keys)

    def wait_for(self, predicate: Callable[[], bool], what: str, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.1)
        try:
            screen = self.screen()
        except subprocess.SubprocessError:
            screen = "(the terminal is closed)"
        raise AssertionError(f"timed out after {timeout}s waiting for {what}:\n{screen}")

    def wait_for_text(self, text: str, timeout: float = 15) -> None:
        self.wait_for(lambda: text in self.screen(), repr(text), timeout)

    def exit_code(self, timeout: float = 30) -> int:
        rc = self.folder / "rc"
        self.wait_for(rc.exists, "jobdeck to exit", timeout)
        return int(rc.read_text())

    def pid(self) -> int:
        pid = self.folder / "pid"
        self.wait_for(pid.exists, "the pid file", 5)
        return int(pid.read_text())

    def close(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], capture_output=True,
                       timeout=10)


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Callable[..., Terminal]]:
    opened: list[Terminal] = []

    def open_terminal(*args: str, size: tuple[int, int] = (WIDTH, HEIGHT)) -> Terminal:
        term = Terminal(tmp_path, list(args), size)
        opened.append(term)
        return term

    yield open_terminal
    for term in opened:
        term.close()


def write_config(folder: Path, workers: str, grace: float = 10) -> Path:
    (folder / "tui_e2e_workers.py").write_text(WORKERS)
    config = folder / "dashboard.toml"
    config.write_text(f"[orchestrator]\nshutdown_grace_seconds = {grace}\n{workers}")
    return config


def test_t_triggers_the_first_worker_and_q_exits_0(tmp_path: Path, terminal) -> None:
    """Rows show, `t` runs the selected (first) worker, `q` stops it cleanly: exit 0."""
    marker = tmp_path / "marker.txt"
    config = write_config(tmp_path, f"""
[workers.marker]
fn = "tui_e2e_workers:mark"
mode = "triggered"
params = {{ path = "{marker}" }}

[workers.quiet]
fn = "tui_e2e_workers:mark"
interval_seconds = 3600
run_at_start = false
params = {{ path = "{tmp_path / 'quiet.txt'}" }}
""")
    term = terminal("--store", ":memory:", "--config", str(config))
    term.wait_for_text("waiting for a trigger")
    term.wait_for_text("quiet")
    term.press("t")
    term.wait_for(marker.exists, "the marker file")
    assert marker.read_text().startswith("manual ")
    term.wait_for_text("1 ok")
    term.press("q")
    assert term.exit_code() == 0
    assert not (tmp_path / "quiet.txt").exists()


def test_sigterm_stops_gracefully_letting_the_run_finish(tmp_path: Path, terminal) -> None:
    """SIGTERM is the same as `q`: the run in flight finishes within the grace, exit 0."""
    marker = tmp_path / "finished.txt"
    config = write_config(tmp_path, f"""
[workers.slow]
fn = "tui_e2e_workers:slow_mark"
interval_seconds = 3600
params = {{ path = "{marker}", seconds = 1.5 }}
""")
    term = terminal("--store", ":memory:", "--config", str(config))
    term.wait_for_text("running attempt 1/4")
    os.kill(term.pid(), signal.SIGTERM)
    term.wait_for_text("stopping…", timeout=5)
    assert term.exit_code() == 0
    assert marker.read_text() == "finished\n"


def test_closing_the_terminal_stops_gracefully_and_exits(tmp_path: Path, terminal) -> None:
    """SIGHUP (the terminal closes): the run in flight finishes, then the process ends."""
    marker = tmp_path / "finished.txt"
    config = write_config(tmp_path, f"""
[workers.slow]
fn = "tui_e2e_workers:slow_mark"
interval_seconds = 3600
params = {{ path = "{marker}", seconds = 1.5 }}
""")
    term = terminal("--store", ":memory:", "--config", str(config))
    term.wait_for_text("running attempt 1/4")
    pid = term.pid()
    term.close()
    term.wait_for(lambda: not _alive(pid), "jobdeck to end after its terminal closed", 20)
    assert marker.read_text() == "finished\n"


def _alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, ended but not reaped, counts as ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def test_the_demo_is_alive_at_once_and_quits_cleanly(tmp_path: Path, terminal) -> None:
    """`jobdeck` with no config shows the demo's workers running within seconds."""
    term = terminal("--store", ":memory:")
    started = time.monotonic()
    term.wait_for_text("fetch-data", timeout=10)
    term.wait_for_text("running attempt", timeout=5)
    alive_after = time.monotonic() - started
    assert alive_after < 10
    term.press("q")
    term.wait_for_text("stopping…", timeout=5)
    assert term.exit_code(timeout=30) == 0


def test_at_80x24_the_essentials_stay_and_answers_flash(tmp_path: Path, terminal) -> None:
    """The demo at 80x24: header with DLQ, uptime and sort; `?` and `q` in the key bar; a
    sort answers in the flash line above it, and an open circuit reads `circuit open`."""
    term = terminal("--store", ":memory:", size=(80, 24))
    term.wait_for_text("fetch-data", timeout=10)

    def essentials() -> bool:
        screen = term.screen().rstrip("\n").splitlines()
        header, keys = screen[0], screen[-1]
        return all(part in header for part in ("DLQ", " up ", "config order")) and all(
            key in keys for key in ("? Help", "q Quit"))

    term.wait_for(essentials, "DLQ, uptime and sort in the header; ? and q in the key bar")
    term.press("s")
    term.wait_for(lambda: "✓ Sorted by name ▲" in term.screen().rstrip("\n").splitlines()[-2],
                  "the flash line above the key bar")
    term.wait_for_text("circuit open", timeout=20)  # broken-export's circuit opens
    assert "disabled" not in term.screen().splitlines()[0]
    term.press("q")
    assert term.exit_code(timeout=30) == 0
