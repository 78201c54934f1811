"""Fuzz: arbitrary text and bytes through the config loader never escape as a traceback.

Whatever a config file holds (invalid UTF-8, control characters, odd keys and values)
and whatever a Python caller passes (lone surrogates included), loading either succeeds
or raises `ConfigError` with messages that encode as UTF-8 once escaped for a terminal.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobdeck import ConfigError, load_config, parse_config

anything = st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF), max_size=12)
keys = st.sampled_from(
    ["fn", "mode", "interval_seconds", "cron", "timezone", "priority", "depends_on", "blocks",
     "params", "timeout_seconds", "max_retries", "enabled", "stall_seconds"]
) | anything
values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | anything,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(anything, inner, max_size=3),
    max_leaves=8,
)
FN = "tests.core.sample_workers:ok"


def _accepts(data: Any) -> None:
    try:
        parse_config(data, source="<fuzz>")
    except ConfigError as exc:
        for problem in exc.problems:
            problem.encode("utf-8", "backslashreplace")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=anything, worker=st.dictionaries(keys, values, max_size=5), with_fn=st.booleans())
def test_any_python_config_loads_or_says_why(name: str, worker: dict, with_fn: bool) -> None:
    """Any worker table from Python: a config, or a ConfigError; nothing else escapes."""
    if with_fn:
        worker = {**worker, "fn": FN}
    _accepts({"workers": {name: worker}})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.binary(max_size=200), prefix=st.sampled_from([b"", b"[workers.a]\n", b"x = "]))
def test_any_file_bytes_load_or_say_why(body: bytes, prefix: bytes) -> None:
    """Any bytes in a config file (invalid UTF-8, control characters): ConfigError at worst."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "jobs.toml"
        path.write_bytes(prefix + body)
        try:
            load_config(path)
        except ConfigError as exc:
            assert exc.problems
