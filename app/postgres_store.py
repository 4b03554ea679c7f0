"""The store in PostgreSQL (`storage.backend: postgres`, `storage.database_url`): one database that any number
of workers and API processes share. psycopg 3 with a connection pool; the queries are app/sql_store.py's, and
workers claim jobs with FOR UPDATE SKIP LOCKED, so they never wait for each other or take the same job."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from app.jobs import Clock
from app.sql_store import POSTGRES_TYPES, Executor, SqlStore, schema

# A database an older version made gets what it lacks: every table is IF NOT EXISTS, and so are these columns.
SCHEMA = schema(POSTGRES_TYPES) + "ALTER TABLE chunks ADD COLUMN IF NOT EXISTS page INTEGER;"
SCHEMA_LOCK = 7_362_001  # an advisory lock id: two processes starting at once create the tables once


class Row:
    """A row by column name or position, like sqlite3.Row."""

    __slots__ = ("_names", "_values")

    def __init__(self, names: dict[str, int], values: Sequence[Any]) -> None:
        self._names = names
        self._values = values

    def __getitem__(self, key: str | int) -> Any:
        return self._values[key if isinstance(key, int) else self._names[key]]

    def keys(self) -> list[str]:
        return list(self._names)


def _rows(cursor: Any) -> Callable[[Sequence[Any]], Row]:
    names = {column.name: i for i, column in enumerate(cursor.description or ())}
    return lambda values: Row(names, values)


def _schema_exists(connection: psycopg.Connection[Row]) -> bool:
    newest = "SELECT 1 FROM information_schema.columns WHERE table_name = 'chunks' AND column_name = 'page'"
    return connection.execute(newest).fetchone() is not None  # the newest piece of SCHEMA


def _placeholders(sql: str) -> str:
    """app/sql_store.py's `?` placeholders as psycopg's `%s`."""
    return sql.replace("%", "%%").replace("?", "%s")


class Transaction:
    def __init__(self, connection: psycopg.Connection[Row]) -> None:
        self.connection = connection

    def execute(self, sql: str, params: Any = (), /) -> psycopg.Cursor[Row]:
        return self.connection.execute(_placeholders(sql), params)

    def executemany(self, sql: str, params: Any, /) -> None:
        with self.connection.cursor() as cursor:
            cursor.executemany(_placeholders(sql), params)


class PostgresDatabase:
    tags_aggregate = "string_agg(t.tag, chr(31))"
    skip_locked = " FOR UPDATE SKIP LOCKED"
    integrity_error = psycopg.errors.IntegrityError

    def __init__(self, url: str, pool_size: int = 8) -> None:
        """Nothing is opened here: the first use connects and creates the tables."""
        self.url = url
        self.pool_size = pool_size
        self._pool: ConnectionPool[psycopg.Connection[Row]] | None = None
        self._lock = threading.Lock()

    def _opened(self) -> ConnectionPool[psycopg.Connection[Row]]:
        with self._lock:
            if self._pool is None:
                pool: ConnectionPool[psycopg.Connection[Row]] = ConnectionPool(
                    self.url, min_size=1, max_size=self.pool_size, kwargs={"row_factory": _rows}, open=True
                )
                with pool.connection() as connection, connection.transaction():
                    # Only when missing: DDL takes table locks that would wait on (and deadlock with) other
                    # processes' transactions. One transaction: all tables or none.
                    if not _schema_exists(connection):
                        connection.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
                        if not _schema_exists(connection):
                            connection.execute(SCHEMA)
                self._pool = pool
            return self._pool

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        with self._opened().connection() as connection, connection.transaction():
            yield Transaction(connection)

    def read(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        with self._opened().connection() as connection:
            return connection.execute(_placeholders(sql), params).fetchall()

    def serialize(self, db: Executor, key: str) -> None:
        """Hold `key` until the transaction ends: concurrent uploads into one collection take turns."""
        db.execute("SELECT pg_advisory_xact_lock(hashtext(?))", (key,))

    @contextmanager
    def hold(self, key: str) -> Iterator[None]:
        with self._opened().connection() as connection:  # a session lock: on this connection until unlocked
            connection.execute("SELECT pg_advisory_lock(hashtext(%s))", (key,))
            try:
                yield
            finally:
                connection.execute("SELECT pg_advisory_unlock(hashtext(%s))", (key,))

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()


class PostgresStore(SqlStore):
    def __init__(self, url: str, clock: Clock = time.time) -> None:
        super().__init__(PostgresDatabase(url), url.rsplit("@", 1)[-1], clock)  # the path, without credentials
