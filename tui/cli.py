"""The `jobdeck` console script: the core's command line, with the dashboard plugged in."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from jobdeck import JobdeckConfig, Orchestrator
from jobdeck._cli import RunOptions
from jobdeck._cli import main as core_main
from jobdeck._exit import ExitCode


def run_dashboard(orch: Orchestrator, config: JobdeckConfig, options: RunOptions) -> int:
    """Run the Textual dashboard on `orch` (Textual is imported only here)."""
    try:
        from .app import run_app
    except ImportError:
        print("jobdeck: the dashboard is not built yet; use --no-ui", file=sys.stderr)
        return ExitCode.USAGE
    return run_app(orch, config, options)


def main(argv: Sequence[str] | None = None) -> int:
    """Run `jobdeck`; returns the process exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "attach":
        from ._attach import attach_main

        return attach_main(args[1:])
    return core_main(args, run_ui=run_dashboard)


if __name__ == "__main__":
    raise SystemExit(main())
