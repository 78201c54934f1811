"""Every benchmark runs at a tiny size (`--quick`) and prints well-formed JSON lines.

Timings are never asserted: CI machines are shared and slow; `bench/RESULTS.md` holds
the figures. This only keeps the benchmarks working as the code they measure changes.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.pgserver import find_server_bin

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ("dispatch", "lateness", "idle", "memory", "shutdown", "tui", "peers", "plan")
KINDS = {"measurement", "skip", "target"}


def _run_bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )


@pytest.fixture(scope="module")
def suite_lines() -> list[dict[str, Any]]:
    """The whole suite, once, at quick sizes, as parsed JSON lines."""
    done = _run_bench("--quick", "--json")
    assert done.returncode == 0, done.stderr
    lines = []
    for text in done.stdout.splitlines():
        line = json.loads(text)
        assert isinstance(line, dict), text
        lines.append(line)
    return lines


@pytest.mark.parametrize("bench", BENCHMARKS)
def test_benchmark_prints_well_formed_results(
    suite_lines: list[dict[str, Any]], bench: str
) -> None:
    """Each benchmark prints measurements (or says why it skipped), each a flat JSON object."""
    mine = [line for line in suite_lines if line.get("bench") == bench]
    assert mine, f"{bench} printed nothing"
    for line in mine:
        assert line["kind"] in KINDS
        assert isinstance(line["system"], str) and line["system"]
        if line["kind"] == "skip":
            assert line["reason"]
        for value in line.values():
            assert not isinstance(value, dict | list), line
            if isinstance(value, float):
                assert not math.isnan(value), line
    measured = {line["system"] for line in mine if line["kind"] == "measurement"}
    skipped = {line["system"] for line in mine if line["kind"] == "skip"}
    assert "jobdeck" in measured | skipped


def test_quick_runs_judge_no_targets(suite_lines: list[dict[str, Any]]) -> None:
    """Targets are judged only at full sizes: a quick run prints no pass/miss."""
    assert not [line for line in suite_lines if line["kind"] == "target"]


def test_table_output_for_people() -> None:
    """Without --json a benchmark prints a titled table with a header row."""
    done = _run_bench("shutdown", "--quick")
    assert done.returncode == 0, done.stderr
    assert "== shutdown" in done.stdout
    assert "stop_to_exit_ms" in done.stdout
    with pytest.raises(json.JSONDecodeError):
        json.loads(done.stdout.strip().splitlines()[-1])


def test_cluster_quick_measures_every_goal() -> None:
    """`bench cluster --quick` starts its own server and measures G6-G11 (where a server
    binary exists), each goal a well-formed measurement, none failed."""
    if find_server_bin() is None:
        pytest.skip("no PostgreSQL server binaries: `apt-get install postgresql`")
    done = subprocess.run(
        [sys.executable, "-m", "bench", "cluster", "--quick", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(text) for text in done.stdout.splitlines()]
    failed = [line for line in lines if line["kind"] == "skip" and line["system"] == "jobdeck"]
    assert not failed, failed
    measured = [line for line in lines if line["kind"] == "measurement"]
    assert {line["goal"] for line in measured} == {"G6", "G7", "G8", "G9", "G10", "G11"}
    for line in measured:
        assert line["bench"] == "cluster"
        for value in line.values():
            assert not isinstance(value, dict | list), line
            if isinstance(value, float):
                assert math.isfinite(value), line
    by_goal = {(line["goal"], line.get("fault")): line for line in measured
               if line["system"] == "jobdeck"}
    # what holds whatever the machine's speed
    assert by_goal["G10", None]["succeeded"] == by_goal["G10", None]["jobs"]
    assert by_goal["G6", "SIGKILL"]["runs"] == 4
    assert not [line for line in lines if line["kind"] == "target"]
