"""What every benchmark shares: measurements, medians of repeats, targets and output.

A benchmark module measures once and returns `Measurement`s; the harness repeats that,
takes the median of every figure (ratios included: each run computes its ratio against
the baseline it measured in the same run, so drift between runs cancels), checks the
targets and prints one JSON object per line (`--json`) or a table.
"""

from __future__ import annotations

import gc
import json
import math
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TextIO

import attrs


@attrs.frozen
class Measurement:
    """One system measured once (or the median of several runs) by one benchmark.

    `params` say what was measured (sizes, store); `figures` are the numbers (a ratio
    against the baseline of the same run is a figure too).
    """

    bench: str
    system: str
    params: dict[str, Any]
    figures: dict[str, Any]

    @property
    def key(self) -> tuple[str, str, str]:
        return self.bench, self.system, json.dumps(self.params, sort_keys=True)

    def line(self) -> dict[str, Any]:
        return {"kind": "measurement", "bench": self.bench, "system": self.system,
                **self.params, **self.figures}


@attrs.frozen
class Skip:
    """A benchmark (or one system of it) that could not run here, and why."""

    bench: str
    system: str
    reason: str

    def line(self) -> dict[str, Any]:
        return {"kind": "skip", "bench": self.bench, "system": self.system,
                "reason": self.reason}


@attrs.frozen
class Target:
    """A goal from the issue: `figure` of `system` must be `op` (>= or <=) `limit`."""

    bench: str
    system: str
    figure: str
    op: str
    limit: float
    label: str
    #: Only measurements whose params include these items are judged.
    where: dict[str, Any] = attrs.field(factory=dict)

    def applies_to(self, m: Measurement) -> bool:
        return (
            m.bench == self.bench
            and m.system == self.system
            and self.figure in m.figures
            and all(m.params.get(k) == v for k, v in self.where.items())
        )

    def judge(self, m: Measurement) -> Verdict:
        value = m.figures[self.figure]
        met = value >= self.limit if self.op == ">=" else value <= self.limit
        return Verdict(self, m.params, value, bool(met))


@attrs.frozen
class Verdict:
    target: Target
    params: dict[str, Any]
    value: float
    met: bool

    def line(self) -> dict[str, Any]:
        t = self.target
        return {"kind": "target", "bench": t.bench, "system": t.system, **self.params,
                "target": t.label, "figure": t.figure, "op": t.op, "limit": t.limit,
                "value": self.value, "met": self.met}


Result = Measurement | Skip


# ---------------------------------------------------------------------- statistics


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """The p-th percentile (0-100) of already sorted values, linearly interpolated."""
    if not sorted_values:
        return math.nan
    rank = (len(sorted_values) - 1) * p / 100
    low = math.floor(rank)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (rank - low)


def ratio(value: float, baseline: float) -> float:
    return value / baseline if baseline else math.inf


def merge_repeats(runs: Sequence[Sequence[Result]]) -> list[Result]:
    """Median of each numeric figure over runs, per (bench, system, params)."""
    order: list[tuple[str, str, str]] = []
    groups: dict[tuple[str, str, str], list[Measurement]] = {}
    skips: dict[tuple[str, str], Skip] = {}
    for run in runs:
        for result in run:
            if isinstance(result, Skip):
                skips.setdefault((result.bench, result.system), result)
                continue
            if result.key not in groups:
                order.append(result.key)
                groups[result.key] = []
            groups[result.key].append(result)
    merged: list[Result] = []
    for key in order:
        group = groups[key]
        figures: dict[str, Any] = {}
        for name, last in group[-1].figures.items():
            values = [m.figures[name] for m in group if name in m.figures]
            numeric = all(
                isinstance(v, int | float) and not isinstance(v, bool) for v in values
            )
            figures[name] = median(values) if numeric else last
        params = {**group[0].params, "repeat": len(group)} if len(group) > 1 else group[0].params
        merged.append(Measurement(group[0].bench, group[0].system, params, figures))
    merged.extend(skips.values())
    return merged


# ---------------------------------------------------------------------- timing


@attrs.define
class Clocks:
    """Wall and CPU (all threads of the process) seconds since `start()`."""

    wall0: float = 0.0
    cpu0: float = 0.0
    wall: float = 0.0
    cpu: float = 0.0

    def start(self) -> Clocks:
        self.wall0, self.cpu0 = time.perf_counter(), time.process_time()
        return self

    def stop(self) -> Clocks:
        self.wall = time.perf_counter() - self.wall0
        self.cpu = time.process_time() - self.cpu0
        return self


@contextmanager
def quiet_gc() -> Iterator[None]:
    """Start a measurement from a collected heap, so one run's garbage is not the next's."""
    gc.collect()
    yield
    gc.collect()


# ---------------------------------------------------------------------- output


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isinf(value) or math.isnan(value):
            return str(value)
        magnitude = abs(value)
        if magnitude >= 1000:
            return f"{value:,.0f}"
        if magnitude >= 10:
            return f"{value:.1f}"
        if magnitude >= 0.01 or value == 0:
            return f"{value:.3f}"
        return f"{value:.2e}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


class Reporter:
    """Prints results as JSON lines, or as a table per benchmark for people."""

    def __init__(self, *, as_json: bool, out: TextIO | None = None) -> None:
        self.as_json = as_json
        self.out = out if out is not None else sys.stdout
        self.verdicts: list[Verdict] = []
        self.errors = 0

    def report(self, bench: str, results: Sequence[Result], targets: Sequence[Target]) -> None:
        verdicts = [
            t.judge(m)
            for t in targets
            for m in results
            if isinstance(m, Measurement) and t.applies_to(m)
        ]
        self.verdicts.extend(verdicts)
        if self.as_json:
            for item in [*results, *verdicts]:
                print(json.dumps(item.line(), default=str), file=self.out, flush=True)
        else:
            self._table(bench, results, verdicts)

    def _table(self, bench: str, results: Sequence[Result], verdicts: Sequence[Verdict]) -> None:
        print(f"\n== {bench}", file=self.out)
        measured = [r for r in results if isinstance(r, Measurement)]
        if measured:
            columns: list[str] = ["system"]
            for part in ("params", "figures"):
                for m in measured:
                    columns.extend(k for k in getattr(m, part) if k not in columns)
            rows = [m.line() for m in measured]
            table = [columns] + [[_cell(row.get(c, "")) for c in columns] for row in rows]
            widths = [max(len(r[i]) for r in table) for i in range(len(columns))]
            for i, r in enumerate(table):
                print("  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)),
                      file=self.out)
                if i == 0:
                    print("  ".join("-" * w for w in widths), file=self.out)
        for r in results:
            if isinstance(r, Skip):
                print(f"skipped {r.system}: {r.reason}", file=self.out)
        for v in verdicts:
            shown = {k: v.params[k] for k in v.target.where}
            where = f" [{', '.join(f'{k}={x}' for k, x in shown.items())}]" if shown else ""
            mark = "PASS" if v.met else "MISS"
            print(f"{mark}  {v.target.label}{where}: {_cell(v.value)}", file=self.out)
        self.out.flush()

    def error(self, bench: str, error: BaseException) -> None:
        """A benchmark crashed: say so in the output (the traceback goes to stderr)."""
        self.errors += 1
        text = f"{type(error).__name__}: {error}"
        if self.as_json:
            line = {"kind": "error", "bench": bench, "system": "jobdeck", "error": text}
            print(json.dumps(line), file=self.out, flush=True)
        else:
            print(f"\n== {bench}\nERROR {text}", file=self.out, flush=True)

    def summary(self) -> None:
        if not self.verdicts or self.as_json:
            return
        met = sum(v.met for v in self.verdicts)
        print(f"\ntargets met: {met}/{len(self.verdicts)}", file=self.out)
        for v in self.verdicts:
            if not v.met:
                print(f"  MISS {v.target.bench}: {v.target.label} ({_cell(v.value)})",
                      file=self.out)


def run_repeated(
    measure: Callable[[], Sequence[Result]], repeat: int
) -> list[Result]:
    """Measure `repeat` times and merge into medians."""
    runs = []
    for _ in range(max(1, repeat)):
        with quiet_gc():
            runs.append(list(measure()))
    return merge_repeats(runs)


@attrs.define
class GcPauses:
    """Collections by CPython's cyclic GC while active, and how long each paused the process."""

    #: gc.freeze() on entry (unfreeze on exit): what is alive now is never collected.
    freeze: bool = False
    pauses: list[tuple[int, float]] = attrs.field(factory=list)
    _started: float = 0.0

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses.append((info["generation"], time.perf_counter() - self._started))

    def __enter__(self) -> GcPauses:
        if self.freeze:
            gc.freeze()
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc_info: object) -> None:
        gc.callbacks.remove(self._callback)
        if self.freeze:
            gc.unfreeze()

    def figures(self) -> dict[str, Any]:
        return {
            "gc_full_collections": sum(gen == 2 for gen, _ in self.pauses),
            "gc_pause_max_ms": max((s for _, s in self.pauses), default=0.0) * 1e3,
        }
