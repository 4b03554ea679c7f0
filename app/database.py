"""One SQLite file (WAL) shared by the API and the worker: a connection per thread, every one closed by close()."""

from __future__ import annotations

import fcntl
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path


class Database:
    """The SQL dialect bits app/sql_store.py asks of its database, for SQLite."""

    tags_aggregate = "group_concat(t.tag, char(31))"
    skip_locked = ""  # BEGIN IMMEDIATE already lets one writer at a time claim
    integrity_error = sqlite3.IntegrityError

    def __init__(self, path: Path, schema: str, migrations: Sequence[str] = ()) -> None:
        """Nothing is opened here: the first connection creates the file and the schema (`schema`, the
        current layout), or brings an older file to it by the `migrations` it has not had yet."""
        self.path = path
        self.schema = schema
        self.migrations = migrations
        self._local = threading.local()
        self._opened: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._schema_applied = False

    def connection(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is not None:
            return db
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # check_same_thread=False only so that close() can close other threads' connections at shutdown.
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        with self._lock:
            if not self._schema_applied:
                self._apply_schema(db)  # before foreign keys are on: a migration may rebuild a table
                self._schema_applied = True
            self._opened.append(db)
        db.execute("PRAGMA foreign_keys=ON")
        self._local.db = db
        return db

    def _apply_schema(self, db: sqlite3.Connection) -> None:
        # In one transaction, so a crash leaves the file as it was; the first of two processes does the work.
        db.execute("BEGIN IMMEDIATE")
        try:
            applied = db.execute("PRAGMA user_version").fetchone()[0]
            created = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0
            if not created:
                for migration in self.migrations[applied:]:
                    for statement in _statements(migration):
                        db.execute(statement)
            for statement in _statements(self.schema):
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {len(self.migrations)}")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def serialize(self, db: object, key: str) -> None:
        pass  # BEGIN IMMEDIATE: one writer at a time already

    @contextmanager
    def hold(self, key: str) -> Iterator[None]:
        with self.path.with_name(f"{self.path.name}.{key}.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or the process dies
            yield

    def read(self, sql: str, params: Sequence[object] = ()) -> list[sqlite3.Row]:
        return self.connection().execute(sql, params).fetchall()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        db = self.connection()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def close(self) -> None:
        """Close every thread's connection; a thread that uses the database afterwards opens a new one."""
        with self._lock:
            opened, self._opened = self._opened, []
        for db in opened:
            db.close()
        self._local = threading.local()


def _statements(script: str) -> list[str]:
    """A script's statements, for running them inside a transaction (executescript would commit first)."""
    statements, pending = [], ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    return statements
