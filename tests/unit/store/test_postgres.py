"""What only the PostgreSQL store has: a server to reach, a schema shared by replicas,
and notifications of new events."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import psycopg
import pytest

from langchain_runtime import PostgresRunStore, StoreError
from langchain_runtime.store import local_owner
from langchain_runtime.store._pg import _VERSION_TABLE, MIGRATIONS, SCHEMA_VERSION, redact
from tests.postgres_server import PostgresServer
from tests.unit.store._helpers import header, record

pytestmark = pytest.mark.postgres


@pytest.fixture
def store(postgres_db: str) -> Iterator[PostgresRunStore]:
    s = PostgresRunStore(postgres_db)
    yield s
    s.close()


def test_an_unreachable_server_is_one_line_naming_it_without_its_password() -> None:
    dsn = "postgresql://app:s3cret@127.0.0.1:1/runs"
    with pytest.raises(StoreError) as caught:
        PostgresRunStore(dsn, timeout=1)
    message = str(caught.value)
    assert "\n" not in message and "s3cret" not in message
    assert "postgresql://app:***@127.0.0.1:1/runs" in message
    assert "could not be reached within 1s" in message


def test_passwords_are_redacted_in_every_form() -> None:
    assert redact("postgresql://u:pw@h/db") == "postgresql://u:***@h/db"
    assert redact("host=h password=pw dbname=d") == "host=h password=*** dbname=d"
    assert redact("host=h password='p w' dbname=d") == "host=h password=*** dbname=d"
    assert redact("postgresql://u@h/db?password=pw&x=1") == "postgresql://u@h/db?password=***&x=1"


def test_the_store_never_shows_its_password(postgres_db: str) -> None:
    dsn = postgres_db.replace("postgres@", "postgres:hunter2@")  # trust auth ignores it
    store = PostgresRunStore(dsn)
    try:
        assert "hunter2" not in repr(store) and "postgres:***@" in repr(store)
        store.close()
        assert "hunter2" not in (store.check() or "")
    finally:
        store.close()


def test_replicas_starting_at_once_create_the_schema_once(postgres_db: str) -> None:
    stores: list[PostgresRunStore] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def open_one() -> None:
        try:
            barrier.wait(10)
            stores.append(PostgresRunStore(postgres_db))
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert errors == [] and len(stores) == 6
        with psycopg.connect(postgres_db) as conn:
            rows = conn.execute("SELECT version, store_id FROM run_store_schema_version").fetchall()
        assert len(rows) == 1 and rows[0][0] == SCHEMA_VERSION
        # one store: a run begun through one replica is live (this process) to all
        stores[0].begin_run(header(owner=local_owner()))
        assert all(s.is_live("r1") for s in stores)
    finally:
        for s in stores:
            s.close()


def test_a_keys_runs_are_listed_through_the_owner_index(store: PostgresRunStore) -> None:
    from langchain_runtime.api.store import RunRecord

    for i in range(40):
        store.create(RunRecord(f"k{i}", "completed", request={"_owner": f"key{i % 4}"}))
    records, total = store.list(owner="key1", limit=5)
    assert total == 10 and all(r.request["_owner"] == "key1" for r in records)
    with psycopg.connect(store.dsn, autocommit=True) as conn:
        conn.execute("SET enable_seqscan = off")  # a table this small would be scanned
        plan = "\n".join(
            row[0]
            for row in conn.execute(
                "EXPLAIN SELECT * FROM run_records WHERE request::jsonb ->> '_owner' = 'key1' "
                "ORDER BY created_at DESC, run_id DESC LIMIT 5"
            ).fetchall()
        )
    assert "run_records_by_owner" in plan, plan


def test_a_version_1_database_migrates_to_the_owner_index(postgres_db: str) -> None:
    with psycopg.connect(postgres_db) as conn, conn.transaction():  # what version 1 wrote
        for statement in MIGRATIONS[1]:
            conn.execute(statement)
        conn.execute(_VERSION_TABLE)
        conn.execute("INSERT INTO run_store_schema_version VALUES (1, 'cafe')")
    PostgresRunStore(postgres_db).close()
    with psycopg.connect(postgres_db, autocommit=True) as conn:
        assert conn.execute("SELECT version FROM run_store_schema_version").fetchall() == [
            (SCHEMA_VERSION,)
        ]
        names = {r[0] for r in conn.execute("SELECT indexname FROM pg_indexes").fetchall()}
    assert "run_records_by_owner" in names


def test_a_newer_schema_is_refused(postgres_db: str) -> None:
    PostgresRunStore(postgres_db).close()
    with psycopg.connect(postgres_db, autocommit=True) as conn:
        conn.execute("UPDATE run_store_schema_version SET version = 99")
    with pytest.raises(StoreError, match="schema version 99, newer than"):
        PostgresRunStore(postgres_db)


def test_a_server_that_stops_mid_run_is_a_store_error_then_works_again(
    postgres_server: PostgresServer, postgres_db: str
) -> None:
    store = PostgresRunStore(postgres_db, timeout=2)
    try:
        store.begin_run(header())
        store.commit("r1", [record("a")])
        postgres_server.stop()
        with pytest.raises(StoreError, match="could not be reached") as caught:
            store.commit("r1", [record("b")])
        assert "\n" not in str(caught.value)
        assert store.check() is not None
        postgres_server.start()
        store.commit("r1", [record("b")])
        assert store.check() is None
        assert set(store.load_run("r1").tasks) == {"a", "b"}  # type: ignore[union-attr]
    finally:
        store.close()


def test_a_held_lock_times_out_as_a_store_error(postgres_db: str) -> None:
    store = PostgresRunStore(postgres_db, timeout=0.5)
    try:
        store.begin_run(header())
        store.finish_run("r1", "failed")
        with psycopg.connect(postgres_db) as conn:  # another transaction holds the run
            conn.execute("SELECT 1 FROM durable_runs WHERE run_id = 'r1' FOR UPDATE")
            with pytest.raises(StoreError, match="lock was held"):
                store.claim("r1", local_owner())
    finally:
        store.close()


def test_wait_for_events_returns_on_the_commit(store: PostgresRunStore) -> None:
    store.begin_run(header())
    store.commit("r1", [], [{"seq": 0, "type": "a"}])
    assert [e["seq"] for e in store.wait_for_events("r1", -1, timeout=5)] == [0]
    assert store.wait_for_events("r1", 0, timeout=0.2, poll=0.05) == []  # nothing new

    def later() -> None:
        time.sleep(0.5)
        store.commit("r1", [], [{"seq": 1, "type": "b"}])

    writer = threading.Thread(target=later)
    writer.start()
    started = time.monotonic()
    # poll is long: only the notification can end the wait early
    found = store.wait_for_events("r1", 0, timeout=30, poll=30)
    waited = time.monotonic() - started
    writer.join(10)
    assert [e["type"] for e in found] == ["b"]
    assert waited < 25
    with pytest.raises(ValueError, match="timeout"):
        store.wait_for_events("r1", 0, timeout=-1)
