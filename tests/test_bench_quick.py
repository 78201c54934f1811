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
