"""Which store the command line opens: --store, the config's `store`, or the default."""

from __future__ import annotations

import fcntl
import re
from pathlib import Path

import attrs
import pytest

from jobdeck import JobdeckConfig, MemoryStore, OrchestratorConfig, SQLiteStore, StoreInUse
from jobdeck._cli import RunOptions, demo_config_path, open_store
from jobdeck._sqlite_store import default_store_path


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
    """No --store and no `store` key: $XDG_STATE_HOME/jobdeck/<name>-<hash>.db, folder made."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    store = open_store(options(tmp_path / "etl.toml"), config(history=7))
    assert isinstance(store, SQLiteStore)
    assert store.path.parent == tmp_path / "state" / "jobdeck"
    assert re.fullmatch(r"etl-[0-9a-f]{8}\.db", store.path.name)
    assert store.path.parent.is_dir()
    assert store.history_per_worker == 7


def test_configs_of_the_same_name_in_other_folders_keep_separate_stores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """/a/jobs.toml and /b/jobs.toml get two default stores, not one `jobs.db`."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    first = open_store(options(tmp_path / "a" / "jobs.toml"), config())
    second = open_store(options(tmp_path / "b" / "jobs.toml"), config())
    assert isinstance(first, SQLiteStore) and isinstance(second, SQLiteStore)
    assert first.path != second.path
    assert first.path == default_store_path(tmp_path / "a" / "jobs.toml")
    # The same config named another way (relative, via ..) is the same store.
    monkeypatch.chdir(tmp_path / "state")
    assert default_store_path(Path("../a/x/../jobs.toml")) == first.path


@pytest.fixture
def old_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The store an older jobdeck kept for `tmp_path/etl.toml`: state/jobdeck/etl.db."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    folder = tmp_path / "state" / "jobdeck"
    folder.mkdir(parents=True)
    (folder / "etl.db").write_bytes(b"old state")
    return folder / "etl.db"


def test_an_older_default_store_is_taken_over_once(
    tmp_path: Path, old_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Only the old `<name>.db` exists: it (and its WAL) is renamed, and stderr says so once."""
    folder = old_store.parent
    (folder / "etl.db-wal").write_bytes(b"old wal")
    store = open_store(options(tmp_path / "etl.toml"), config())
    assert isinstance(store, SQLiteStore)
    assert store.path.read_bytes() == b"old state"
    assert store.path.with_name(store.path.name + "-wal").read_bytes() == b"old wal"
    assert not (folder / "etl.db").exists()
    assert f"moved the store of etl.toml from {folder / 'etl.db'}" in capsys.readouterr().err
    open_store(options(tmp_path / "etl.toml"), config())
    assert capsys.readouterr().err == ""


def test_an_older_store_is_left_alone_when_the_new_one_exists(
    tmp_path: Path, old_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Both exist (another config of that name took it over): the old file stays as it is."""
    default_store_path(tmp_path / "etl.toml").write_bytes(b"new state")
    store = open_store(options(tmp_path / "etl.toml"), config())
    assert isinstance(store, SQLiteStore) and store.path.read_bytes() == b"new state"
    assert old_store.read_bytes() == b"old state"
    assert capsys.readouterr().err == ""


def test_the_demo_runs_in_memory_unless_given_a_store(tmp_path: Path) -> None:
    """The bundled demo keeps nothing by default; --store still gives it a file."""
    demo = RunOptions(
        config_path=demo_config_path(), is_demo=True, ui=False, store=None,
        log_format="json", log_level="info", http=None, grace=None,
    )
    assert isinstance(open_store(demo, config()), MemoryStore)
    kept = open_store(attrs.evolve(demo, store=str(tmp_path / "demo.db")), config())
    assert isinstance(kept, SQLiteStore) and kept.path == tmp_path / "demo.db"


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


def test_an_older_store_in_use_is_not_moved(tmp_path: Path, old_store: Path) -> None:
    """An older jobdeck still running on its store: refused (StoreInUse), nothing moved."""
    lock = old_store.with_name("etl.db.lock")
    with lock.open("w") as file:
        fcntl.flock(file, fcntl.LOCK_EX)
        file.write("4242\n")
        file.flush()
        with pytest.raises(StoreInUse, match="in use by pid 4242"):
            open_store(options(tmp_path / "etl.toml"), config())
    assert old_store.read_bytes() == b"old state"
    assert not default_store_path(tmp_path / "etl.toml").exists()
