"""`python -m bench [SUBCOMMAND] [--json] [--quick] [--repeat K]`.

With no subcommand, every benchmark runs at its default sizes (the full suite).
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence
from types import ModuleType

from . import cluster, dispatch, idle, lateness, memory, peers, plan, shutdown, tui
from ._harness import Reporter, run_repeated

BENCHMARKS: tuple[ModuleType, ...] = (
    dispatch, lateness, idle, memory, shutdown, tui, peers, plan, cluster,
)

#: What `python -m bench` with no subcommand runs: the sizes the issue's targets name.
FULL_SUITE: tuple[tuple[str, ...], ...] = (
    ("dispatch", "--store", "memory"),
    ("dispatch", "--store", "sqlite"),
    ("lateness", "--workers", "1000"),
    ("lateness", "--workers", "10000"),
    ("idle",),
    ("memory",),
    ("shutdown", "--store", "memory"),
    ("shutdown", "--store", "sqlite"),
    ("tui",),
    ("peers",),
    ("plan", "--workers", "100"),
    ("plan", "--workers", "1000"),
)


def _common_flags(*, suppress: bool) -> argparse.ArgumentParser:
    """Flags accepted before and after the subcommand (suppressed defaults on the latter)."""
    flags = argparse.ArgumentParser(add_help=False)
    default = {"default": argparse.SUPPRESS} if suppress else {}
    flags.add_argument("--json", action="store_true", **default,
                       help="one JSON object per line instead of tables")
    flags.add_argument("--quick", action="store_true", **default,
                       help="tiny sizes, no targets: checks that the benchmark runs (CI)")
    flags.add_argument("--repeat", type=int, metavar="K", **default,
                       help="take medians of K runs (default: each benchmark's own)")
    return flags


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__,
        parents=[_common_flags(suppress=False)],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="SUBCOMMAND")
    after = _common_flags(suppress=True)
    for module in BENCHMARKS:
        bench_parser = sub.add_parser(
            module.NAME, help=module.HELP, description=module.__doc__, parents=[after],
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(bench_parser)
    return parser


def _run_one(module: ModuleType, args: argparse.Namespace, reporter: Reporter) -> None:
    """Run one benchmark; a crash is reported (and the traceback printed) and the rest go on."""
    try:
        _measure_and_report(module, args, reporter)
    except Exception as exc:
        traceback.print_exc()
        reporter.error(module.NAME, exc)


def _measure_and_report(module: ModuleType, args: argparse.Namespace, reporter: Reporter) -> None:
    custom = getattr(module, "run", None)
    if custom is not None:
        custom(args, reporter)
        return
    repeat = args.repeat or (1 if args.quick else module.DEFAULT_REPEAT)
    results = run_repeated(lambda: module.measure(args), repeat)
    reporter.report(module.NAME, results, () if args.quick else module.TARGETS)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    reporter = Reporter(as_json=args.json)
    by_name = {m.NAME: m for m in BENCHMARKS}
    if args.command is not None:
        _run_one(by_name[args.command], args, reporter)
    else:
        shared = ["--json"] * args.json + ["--quick"] * args.quick
        if args.repeat:
            shared += ["--repeat", str(args.repeat)]
        for entry in FULL_SUITE:
            _run_one(by_name[entry[0]], parser.parse_args([*entry, *shared]), reporter)
    reporter.summary()
    return 1 if reporter.errors else 0


if __name__ == "__main__":
    sys.exit(main())
