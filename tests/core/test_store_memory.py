"""The in-memory store meets the Store contract."""

from __future__ import annotations

import pytest

from jobdeck import MemoryStore, Store

from .store_contract import MakeStore, StoreContract


class TestMemoryStore(StoreContract):
    """MemoryStore: a restart is the same instance closed and opened again."""

    @pytest.fixture
    def make_store(self) -> MakeStore:
        def make_store(*, history_per_worker: int = 200) -> Store:
            return MemoryStore(history_per_worker=history_per_worker)

        return make_store

    async def reopen(self, store: Store) -> Store:
        return store
