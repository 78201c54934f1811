"""Which store the command line opens: --store, the config's `store`, or the default."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobdeck import JobdeckConfig, MemoryStore, OrchestratorConfig, SQLiteStore
from jobdeck._cli import RunOptions, open_store


def options(config_path: Path, store: str | None = None) -> RunOptions:
    return RunOptions(
        config_path=config_path, is_demo=False, ui=False, store=store, log_format="json",
        log_level="info", http=None, grace=None,
    )


def config(store: str | None = None, history: int = 200) -> JobdeckConfig:
    return JobdeckConfig(
        path=None,
        orchestrator=OrchestratorConfig(store=store, history_per_worker=history),
        workers=(),
    )


def test_default_store_is_in_the_state_folder_named_after_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No --store and no `store` key: $XDG_STATE_HOME/jobdeck/<config name>.db, folder made."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    store = open_store(options(tmp_path / "etl.toml"), config(history=7))
    assert isinstance(store, SQLiteStore)
    assert store.path == tmp_path / "state" / "jobdeck" / "etl.db"
    assert store.path.parent.is_dir()
    assert store.history_per_worker == 7


def test_store_option_wins_over_the_config(tmp_path: Path) -> None:
    """--store PATH is used even when the config names another store."""
    store = open_store(options(tmp_path / "etl.toml", str(tmp_path / "cli.db")),
                       config(str(tmp_path / "config.db")))
    assert isinstance(store, SQLiteStore) and store.path == tmp_path / "cli.db"


def test_relative_config_store_is_beside_the_config(tmp_path: Path) -> None:
    """A relative `store` in the config is relative to the config file's folder."""
    store = open_store(options(tmp_path / "conf" / "etl.toml"), config("state/etl.db"))
    assert isinstance(store, SQLiteStore)
    assert store.path == tmp_path / "conf" / "state" / "etl.db"


@pytest.mark.parametrize("where", ["option", "config"])
def test_memory_store_keeps_nothing(tmp_path: Path, where: str) -> None:
    """`:memory:` from the option or the config gives the in-memory store."""
    if where == "option":
        store = open_store(options(tmp_path / "etl.toml", ":memory:"), config("x.db"))
    else:
        store = open_store(options(tmp_path / "etl.toml"), config(":memory:"))
    assert isinstance(store, MemoryStore)
