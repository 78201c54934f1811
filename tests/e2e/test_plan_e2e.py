"""The real `jobdeck plan` command, in a subprocess."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from .conftest import REPO, jobdeck_command, run_jobdeck

EXAMPLE = REPO / "tests" / "core" / "plan_example.toml"


def test_plan_exits_3_and_prints_the_report() -> None:
    """`jobdeck plan` on the example: the report on stdout, exit 3 (a worker is behind)."""
    result = run_jobdeck("plan", str(EXAMPLE), repo_on_path=False)
    assert result.returncode == 3, result.stderr
    assert "Falls behind:" in result.stdout
    assert result.stderr == ""


def test_a_reader_that_leaves_early_is_not_an_error(tmp_path: Path) -> None:
    """`jobdeck plan ... | head -1`: exit 0-or-3 as usual, no traceback."""
    env = dict(os.environ, NO_COLOR="1")
    env.pop("PYTHONPATH", None)
    with subprocess.Popen(
        [*jobdeck_command(), "plan", str(EXAMPLE)], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env=env,
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()  # before the plan has printed anything
        err = proc.stderr.read()
        code = proc.wait(timeout=60)
    assert "Traceback" not in err
    assert code == 3
