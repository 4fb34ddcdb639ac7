"""Store files: the old sidecar schema migrates, bad files are refused, one server per file."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from langchain_runtime import SQLiteRunStore, StoreError
from langchain_runtime.store.sqlite import SCHEMA_VERSION
from tests.unit.store._helpers import Child, header, record

#: The sidecar store's schema before durable runs (schema version 1), as it shipped.
V1_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id     TEXT PRIMARY KEY,
    state      TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    workflow   TEXT,
    request    TEXT NOT NULL,
    status     TEXT
);
CREATE INDEX IF NOT EXISTS runs_by_created ON runs (created_at DESC, run_id DESC);
CREATE INDEX IF NOT EXISTS runs_by_state ON runs (state, created_at DESC);
CREATE TABLE IF NOT EXISTS events (
    run_id TEXT NOT NULL,
    seq    INTEGER NOT NULL,
    body   TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
"""


def _v1_file(path: Path) -> None:
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(V1_SCHEMA)
    db.execute(
        "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            "old",
            "completed",
            "2026-01-01T00:00:00+00:00",
            "2026-01-01T00:00:01+00:00",
            "hello",
            '{"workflow":"hello"}',
            '{"state":"completed"}',
        ),
    )
    db.execute('INSERT INTO events VALUES (\'old\', 0, \'{"seq":0,"type":"run_started"}\')')
    db.commit()
    db.close()


def _filled_store(path: Path, runs: int = 40) -> None:
    store = SQLiteRunStore(path)
    for i in range(runs):
        store.begin_run(header(f"r{i}", input={"q": "x" * 2000}))
        store.commit(f"r{i}", [record("a"), record("b")], [{"seq": 0, "type": "x" * 500}])
        store.finish_run(f"r{i}", "completed")
    store.close()  # the last close checkpoints the WAL into the file
    assert path.stat().st_size > runs * 4096 and not Path(f"{path}-wal").exists()


def test_a_version_1_sidecar_file_is_migrated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "server.db"
    _v1_file(path)
    store = SQLiteRunStore(path)
    old = store.load("old")
    assert old is not None and (old.state, old.workflow, old.status) == (
        "completed",
        "hello",
        {"state": "completed"},
    )
    assert store.events("old") == [{"seq": 0, "type": "run_started"}]
    store.begin_run(header("new"))  # the durable tables are there
    store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    SQLiteRunStore(path).close()  # and opening it again changes nothing


def test_a_version_2_store_is_migrated_and_its_runs_go_on(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    store = SQLiteRunStore(path)
    store.begin_run(header("r1"))
    store.commit("r1", [record("a")])
    store.finish_run("r1", "failed")
    store.close()
    with sqlite3.connect(path) as db:  # what the first durable stores wrote
        db.execute("DROP TABLE run_beats")
        db.execute("DROP TABLE run_sources")
        db.execute("UPDATE schema_version SET version = 2")
    store = SQLiteRunStore(path)
    run = store.load_run("r1")
    assert run is not None and run.state == "failed" and set(run.tasks) == {"a"}
    store.commit("r1", [record("b")])  # a commit to a run from before the migration
    store.begin_run(header("r1"), resume=True)
    store.commit("r1", [record("a", cost="0.5")])
    store.finish_run("r1", "completed")
    assert store.load_run("r1").tasks["a"].result["cost"]["amount"] == "0.5"  # type: ignore[union-attr]
    store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]


def _one_line_error(path: Path, match: str) -> str:
    with pytest.raises(StoreError) as info:
        SQLiteRunStore(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message, message
    assert match in message, message
    return message


def test_random_bytes_over_middle_pages_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    _filled_store(path)
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.seek(size // 2 - 4096)
        f.write(os.urandom(3 * 4096))
    _one_line_error(path, "is damaged")


@pytest.mark.parametrize("keep", [0.5, 0.25])
def test_a_file_truncated_mid_page_is_refused(tmp_path: Path, keep: float) -> None:
    path = tmp_path / "runs.db"
    _filled_store(path)
    os.truncate(path, int(path.stat().st_size * keep) + 123)
    _one_line_error(path, "is damaged")


def test_a_file_truncated_to_nothing_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    _filled_store(path, runs=2)
    os.truncate(path, 0)
    _one_line_error(path, "is empty (0 bytes)")


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("these are my notes\n" * 50)
    _one_line_error(path, "is not an SQLite database")


def test_a_foreign_sqlite_database_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
        db.execute("INSERT INTO users VALUES (1, 'ada')")
    _one_line_error(path, "not a run store (its tables: users)")
    with sqlite3.connect(path) as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert tables == {"users"}  # nothing was added


def test_a_store_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    SQLiteRunStore(path).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE schema_version SET version = 99")
    _one_line_error(path, "schema version 99")


def test_a_store_missing_a_table_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    SQLiteRunStore(path).close()
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE tasks")
    _one_line_error(path, "table(s) tasks missing")


def test_an_empty_sqlite_database_becomes_a_store(tmp_path: Path) -> None:
    path = tmp_path / "fresh.db"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 0")
        db.execute("CREATE TABLE t (x)")
        db.execute("DROP TABLE t")
    SQLiteRunStore(path).close()


# -- one server per file, whatever the path ---------------------------------------------------

SERVER = """
from langchain_runtime.store import SQLiteRunStore
store = SQLiteRunStore({path!r}, exclusive=True)
print("ready", flush=True)
import sys; sys.stdin.read()
"""


@pytest.mark.parametrize("link", ["symlink", "hardlink", "same"])
def test_a_second_server_is_refused_through_any_link(tmp_path: Path, link: str) -> None:
    path = tmp_path / "runs.db"
    SQLiteRunStore(path).close()
    other = tmp_path / "elsewhere" / "alias.db"
    other.parent.mkdir()
    if link == "symlink":
        other.symlink_to(path)
    elif link == "hardlink":
        os.link(path, other)
    else:
        other = path
    server = Child(SERVER.format(path=str(path)))
    try:
        with pytest.raises(StoreError, match="in use by another server"):
            SQLiteRunStore(other, exclusive=True)
        reader = SQLiteRunStore(other)  # a store that does not claim the file is fine
        reader.close()
    finally:
        server.stop()
    SQLiteRunStore(other, exclusive=True).close()  # free once the server has gone


def test_one_claim_per_file_within_a_process_too(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    first = SQLiteRunStore(path, exclusive=True)
    link = tmp_path / "link.db"
    link.symlink_to(path)
    with pytest.raises(StoreError, match="in use by another server"):
        SQLiteRunStore(link, exclusive=True)
    reader = SQLiteRunStore(link)
    first.close()
    assert reader.check() is None  # closing the server's store left the reader working
    SQLiteRunStore(path, exclusive=True).close()
    reader.close()


def test_a_killed_server_frees_its_claim(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    server = Child(SERVER.format(path=str(path)))
    server.kill()
    SQLiteRunStore(path, exclusive=True).close()
