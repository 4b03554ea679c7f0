"""The store's tests run against each implementation: SQLite in a temporary file, and PostgreSQL in a
throwaway cluster (one per test session, a fresh database per test)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from app.jobs import Clock
from app.store import Store

StoreOpener = Callable[..., Store]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    from tests.postgres import postgres_cluster

    with postgres_cluster() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def open_store_under_test(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreOpener]:
    """Opens the store of one backend; each call opens the same database again (as another process would)."""
    opened: list[Store] = []
    url: list[str] = []

    def opener(clock: Clock = time.time) -> Store:
        if request.param == "sqlite":
            from app.sqlite_store import SQLiteStore

            store: Store = SQLiteStore(tmp_path / "db.sqlite3", clock)
        else:
            from app.postgres_store import PostgresStore
            from tests.postgres import new_database

            url[:] = url or [new_database(request.getfixturevalue("postgres_server"))]
            store = PostgresStore(url[0], clock)
        opened.append(store)
        return store

    yield opener
    for store in opened:
        store.close()
