"""peers: the dispatch benchmark on jobdeck and on APScheduler 3.11 and 4.0.0a6.

jobdeck runs `dispatch` (memory store) in this process. APScheduler 3.11 runs in this
process when installed beside jobdeck (`pip install -e '.[bench]'`), else in
`bench/.peers/apscheduler-3`; APScheduler 4.0.0a6 (on trio) cannot share a virtualenv
with 3.x, so it runs in `bench/.peers/apscheduler-4`. `python -m bench peers --setup`
creates both virtualenvs. Each peer script prints its figures as one JSON line; the
ratios are jobdeck's jobs/s over the peer's, measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import trio

from . import dispatch
from ._harness import Measurement, Reporter, Result, Skip, Target, ratio, run_repeated

NAME = "peers"
HELP = "the dispatch benchmark on APScheduler 3.11 and 4.0.0a6, as ratios"
DEFAULT_REPEAT = 3
DEFAULT_JOBS, QUICK_JOBS = 10_000, 200
HERE = Path(__file__).parent
PEERS_DIR = HERE / ".peers"
#: virtualenv name -> what pip installs in it.
VENVS = {
    "apscheduler-3": ("apscheduler==3.11.*",),
    "apscheduler-4": ("apscheduler==4.0.0a6", "trio"),
}
SETUP_COMMAND = "python -m bench peers --setup"

TARGETS = (
    Target(NAME, "jobdeck", "ratio_vs_apscheduler-3", ">=", 3.0, ">= 3x APScheduler 3.11"),
    Target(NAME, "jobdeck", "ratio_vs_apscheduler-4", ">=", 15.0,
           ">= 15x APScheduler 4.0.0a6, add_job(function)"),
    Target(NAME, "jobdeck", "ratio_vs_apscheduler-4_task-id", ">=", 15.0,
           ">= 15x APScheduler 4.0.0a6, add_job(task_id), same shape as jobdeck"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--setup", action="store_true",
                        help=f"create the peers' virtualenvs under {PEERS_DIR.name}/ and exit")
    parser.add_argument("--jobs", type=int, help=f"jobs per system (default {DEFAULT_JOBS:,})")


def _python_of(venv: str) -> Path:
    return PEERS_DIR / venv / "bin" / "python"


def setup() -> None:
    """Create (or refresh) each peer's virtualenv with the pinned APScheduler."""
    for venv, requirements in VENVS.items():
        python = _python_of(venv)
        if not python.exists():
            print(f"creating {python.parent.parent}", file=sys.stderr)
            subprocess.run([sys.executable, "-m", "venv", str(python.parent.parent)],
                           check=True)
        print(f"installing {' '.join(requirements)} into {venv}", file=sys.stderr)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *requirements],
                       check=True)


def _apscheduler3_in_process() -> bool:
    try:
        from importlib.metadata import PackageNotFoundError, version

        return version("apscheduler").startswith("3.")
    except PackageNotFoundError:
        return False


def _run_script(venv: str, script: str, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [str(_python_of(venv)), str(HERE / script), *args],
        capture_output=True, text=True, timeout=600, check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{script} failed ({done.returncode}): {done.stderr.strip()}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _missing(venv: str) -> str:
    return f"{PEERS_DIR.name}/{venv} is not set up: run `{SETUP_COMMAND}`"


def measure(args: argparse.Namespace) -> Sequence[Result]:
    jobs = args.jobs or (QUICK_JOBS if args.quick else DEFAULT_JOBS)
    workers = min(100, jobs)
    results: list[Result] = []
    clocks, _ = trio.run(dispatch.jobdeck, "memory", jobs, workers, 100)
    mine: dict[str, Any] = {"jobs_per_s": jobs / clocks.wall}
    jobdeck_params = {"jobs": jobs, "workers": workers, "producers": 100}

    peers: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
    if _apscheduler3_in_process():
        from . import peer_apscheduler3

        figures = peer_apscheduler3.dispatch(jobs)
        peers.append(("apscheduler-3", {"api": "add_job(function)", "where": "in-process"},
                      figures))
    elif _python_of("apscheduler-3").exists():
        figures = _run_script("apscheduler-3", "peer_apscheduler3.py", "--jobs", str(jobs))
        peers.append(("apscheduler-3", {"api": "add_job(function)", "where": "venv"}, figures))
    else:
        results.append(Skip(NAME, "apscheduler-3", _missing("apscheduler-3")))
    if _python_of("apscheduler-4").exists():
        for api, suffix in (("function", ""), ("task-id", "_task-id")):
            figures = _run_script("apscheduler-4", "peer_apscheduler4.py",
                                  "--jobs", str(jobs), "--api", api)
            peers.append((f"apscheduler-4{suffix}",
                          {"api": f"add_job({api.replace('-', '_')})", "where": "venv"},
                          figures))
    else:
        results.append(Skip(NAME, "apscheduler-4", _missing("apscheduler-4")))

    for label, params, figures in peers:
        system = label.removesuffix("_task-id")
        results.append(Measurement(NAME, system, {"jobs": jobs, **params}, {
            "jobs_per_s": figures["jobs_per_s"], "cpu_us_per_job": figures["cpu_us_per_job"],
        }))
        mine[f"ratio_vs_{label}"] = ratio(mine["jobs_per_s"], figures["jobs_per_s"])
    mine["cpu_us_per_job"] = clocks.cpu / jobs * 1e6
    results.insert(0, Measurement(NAME, "jobdeck", jobdeck_params, mine))
    return results


def run(args: argparse.Namespace, reporter: Reporter) -> None:
    if args.setup:
        setup()
        return
    repeat = args.repeat or (1 if args.quick else DEFAULT_REPEAT)
    results = run_repeated(lambda: measure(args), repeat)
    reporter.report(NAME, results, () if args.quick else TARGETS)
