"""The engine stays a plain trio library: no Textual, no asyncio."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "core"


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_core_sources_import_neither_textual_nor_asyncio():
    """No module in core/ imports textual or asyncio."""
    offenders = {
        path.name: sorted(_imported_modules(path) & {"textual", "asyncio"})
        for path in CORE.glob("*.py")
    }
    assert {name: mods for name, mods in offenders.items() if mods} == {}


def test_importing_core_does_not_load_textual():
    """`import jobdeck` leaves Textual unloaded (the dashboard is imported only by tui)."""
    code = "import sys, jobdeck; print(any(m.split('.')[0] == 'textual' for m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        cwd=CORE.parent,
    )
    assert result.stdout.strip() == "False"


def test_everything_lives_under_one_import_name():
    """jobdeck's modules load as `jobdeck.*` only: never as top-level `core` or `tui`."""
    code = (
        "import sys, jobdeck, jobdeck.tui.app, jobdeck.tui.cli, jobdeck.demo_workers.workers\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'core', 'tui', 'demo_workers'}))\n"
        "print(jobdeck.Orchestrator.__module__)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        cwd="/",
    )
    assert result.stdout.split("\n")[:2] == ["[]", "jobdeck._orchestrator"]
