"""The store tests that hold for every run store run against each of them: SQLite, PostgreSQL."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from langchain_runtime.store import PostgresRunStore, SQLiteRunStore

Store = SQLiteRunStore | PostgresRunStore


class Backend:
    """One database of one kind: opens stores on it, and edits it behind their backs."""

    name: str

    def __init__(self) -> None:
        self._open: list[Store] = []

    def open(self, **kw: Any) -> Store:
        store = self._make(**kw)
        self._open.append(store)
        return store

    def _make(self, **kw: Any) -> Store:
        raise NotImplementedError

    #: Python that opens the same database in a child process (``store = ...``).
    def child_open(self, **kw: Any) -> str:
        raise NotImplementedError

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        """Run one statement on the database (``?`` placeholders)."""
        raise NotImplementedError

    def age_heartbeat(self, run_id: str, seconds: float) -> None:
        """Make ``run_id``'s last heartbeat ``seconds`` old."""
        raise NotImplementedError

    def close_all(self) -> None:
        for store in self._open:
            store.close()


class SQLiteBackend(Backend):
    name = "sqlite"

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def _make(self, **kw: Any) -> Store:
        return SQLiteRunStore(self.path, **kw)

    def child_open(self, **kw: Any) -> str:
        return f"SQLiteRunStore({str(self.path)!r}, **{kw!r})"

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        with sqlite3.connect(self.path) as db:
            db.execute(sql, params)
        db.close()

    def age_heartbeat(self, run_id: str, seconds: float) -> None:
        when = datetime.now(timezone.utc) - timedelta(seconds=seconds)
        self.execute(
            "UPDATE run_beats SET heartbeat_at = ? WHERE run_id = ?", (when.isoformat(), run_id)
        )


class PostgresBackend(Backend):
    name = "postgres"

    def __init__(self, dsn: str) -> None:
        super().__init__()
        self.dsn = dsn

    def _make(self, **kw: Any) -> Store:
        return PostgresRunStore(self.dsn, **kw)

    def child_open(self, **kw: Any) -> str:
        return f"PostgresRunStore({self.dsn!r}, **{kw!r})"

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql.replace("?", "%s"), params)

    def age_heartbeat(self, run_id: str, seconds: float) -> None:
        self.execute(
            "UPDATE run_beats SET heartbeat_at = clock_timestamp() - make_interval(secs => ?) "
            "WHERE run_id = ?",
            (seconds, run_id),
        )


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Each run store in turn, on a fresh database."""
    made: Backend
    if request.param == "sqlite":
        made = SQLiteBackend(tmp_path / "runs.db")
    else:
        made = PostgresBackend(request.getfixturevalue("postgres_db"))
    yield made
    made.close_all()


@pytest.fixture
def store(backend: Backend) -> Store:
    return backend.open()
