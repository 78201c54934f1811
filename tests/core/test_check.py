"""`jobdeck check`, in-process: what it prints and the exit code."""

from __future__ import annotations

import pathlib
import sys
import textwrap

import pytest

from jobdeck._cli import main

#: What a worker module raises when imported, as its source says it -> as messages say it.
RAISED_AT_IMPORT = {
    "keyboard_interrupt": ("raise KeyboardInterrupt", "KeyboardInterrupt"),
    "system_exit": ("import sys\nsys.exit(3)", "SystemExit: 3"),
    "generator_exit": ("raise GeneratorExit('odd')", "GeneratorExit: odd"),
    "base_exception": (
        "class Abort(BaseException):\n    pass\n\nraise Abort('stop here')",
        "Abort: stop here",
    ),
    "unprintable": (
        "class Odd(Exception):\n    def __str__(self):\n        raise ValueError\n\nraise Odd()",
        "Odd: <unprintable>",
    ),
}


@pytest.fixture(autouse=True)
def _restore_sys_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """`check` puts the config's folder on sys.path: keep that to this test."""
    monkeypatch.setattr(sys, "path", list(sys.path))


def check(tmp_path: pathlib.Path, text: str, capsys: pytest.CaptureFixture[str]):
    """Run `jobdeck check` on `text` as jobs.toml; (exit code, stdout, stderr)."""
    path = tmp_path / "jobs.toml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    code = main(["check", str(path)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("case", sorted(RAISED_AT_IMPORT))
def test_module_raising_any_base_exception_at_import_is_exit_2(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    """Whatever a worker module raises at import (KeyboardInterrupt, SystemExit...): exit 2."""
    source, shown = RAISED_AT_IMPORT[case]
    module = f"raises_{case}_at_import"
    # Beside the config: `check` puts the config's folder on sys.path.
    (tmp_path / f"{module}.py").write_text(source + "\n", encoding="utf-8")
    code, out, err = check(tmp_path, f'[workers.w]\nfn = "{module}:run"\n', capsys)
    path = tmp_path / "jobs.toml"
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        f"{path}: worker 'w': key 'fn': cannot import '{module}:run':"
        f" importing '{module}' raised {shown}",
        f"{path}: 1 problem",
    ]


def test_module_attribute_that_raises_is_exit_2(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A module `__getattr__` that raises while `fn` is looked up is a problem, not a crash."""
    (tmp_path / "lazy_jobs.py").write_text(
        "def __getattr__(name):\n    raise RuntimeError(f'no {name} yet')\n", encoding="utf-8"
    )
    code, _, err = check(tmp_path, '[workers.w]\nfn = "lazy_jobs:run"\n', capsys)
    del sys.modules["lazy_jobs"]
    assert code == 2
    assert err.splitlines()[0] == (
        f"{tmp_path / 'jobs.toml'}: worker 'w': key 'fn': cannot import 'lazy_jobs:run':"
        " getting 'run' from 'lazy_jobs' raised RuntimeError: no run yet"
    )


def test_toml_nested_thousands_deep_is_exit_2(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`a = [[[...]]]` 5,000 deep: exit 2 and one line naming the file, no traceback."""
    code, out, err = check(tmp_path, "a = " + "[" * 5000 + "]" * 5000 + "\n", capsys)
    path = tmp_path / "jobs.toml"
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        f"{path}: cannot be read: arrays or tables are nested too deeply",
        f"{path}: 1 problem",
    ]


def test_keys_the_mode_ignores_are_warnings_and_exit_0(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Keys a worker's mode never reads: one stderr warning each, then OK and exit 0."""
    ok = "tests.core.sample_workers:ok"
    code, out, err = check(
        tmp_path,
        f"""
        [workers.on-demand]
        fn = "{ok}"
        mode = "triggered"
        interval_seconds = 60
        run_at_start = false

        [workers.loop]
        fn = "{ok}"
        mode = "continuous"
        cron = "*/5 * * * *"
        jitter_seconds = 1
        stall_seconds = 30
        """,
        capsys,
    )
    path = tmp_path / "jobs.toml"
    assert code == 0
    assert out.splitlines()[0] == f"{path}: OK, 2 workers"
    assert err.splitlines() == [
        f"{path}: worker 'on-demand': warning: key 'interval_seconds' is ignored"
        " for mode 'triggered'",
        f"{path}: worker 'on-demand': warning: key 'run_at_start' is ignored"
        " for mode 'triggered'",
        f"{path}: worker 'loop': warning: key 'cron' is ignored for mode 'continuous'",
        f"{path}: worker 'loop': warning: key 'jitter_seconds' is ignored for mode 'continuous'",
    ]
