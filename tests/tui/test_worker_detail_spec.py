"""The worker detail's spec box."""

from __future__ import annotations

from types import SimpleNamespace

from rich.console import Console

from jobdeck import WorkerSpec
from jobdeck.tui.widgets._worker_detail import WorkerDetail


def _spec_text(spec: WorkerSpec) -> str:
    worker = SimpleNamespace(name=spec.name, spec=spec, fn="ops.jobs:run")
    _, grid = WorkerDetail._spec(WorkerDetail(), worker)  # type: ignore[arg-type]
    console = Console(width=80, record=True)
    console.print(grid)
    return console.export_text()


def test_spec_shows_expected_run_time_when_configured() -> None:
    """`expected_seconds` (what `jobdeck plan` simulates) has one line; absent, none."""
    text = _spec_text(WorkerSpec(name="w", expected_seconds=90))
    assert any(line.split() == ["expected", "90s"] for line in text.splitlines())
    assert "expected" not in _spec_text(WorkerSpec(name="w"))
