"""The PostgreSQL store's mailbox (``run_requests``): requests to the replica that
executes a run, each taken by one replica and answered once; and the migration of a
database written by the previous schema version."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import psycopg
import pytest

from langchain_runtime import PostgresRunStore
from langchain_runtime.store import RunMailbox
from langchain_runtime.store._pg import _SCHEMA_LOCK, _VERSION_TABLE, MIGRATIONS, SCHEMA_VERSION

pytestmark = pytest.mark.postgres

TASK = {"task": {"id": "extra", "prompt": "p"}, "max_tasks": None}


@pytest.fixture
def stores(postgres_db: str) -> Iterator[tuple[PostgresRunStore, PostgresRunStore]]:
    """Two stores on one database: two replicas."""
    one, two = PostgresRunStore(postgres_db), PostgresRunStore(postgres_db)
    yield one, two
    one.close()
    two.close()


def test_a_request_is_taken_answered_and_collected_once(
    stores: tuple[PostgresRunStore, PostgresRunStore],
) -> None:
    poster, owner = stores
    assert isinstance(poster, RunMailbox)
    first = poster.post_request("r1", "enqueue", TASK, expires_in=60)
    second = poster.post_request("r1", "enqueue", {**TASK, "max_tasks": 7}, expires_in=60)
    other = poster.post_request("r2", "enqueue", TASK, expires_in=60)
    assert poster.collect_answer(first) is None  # nobody answered yet

    taken = owner.take_requests(["r1", "r9"])
    assert [(r.id, r.run_id, r.kind) for r in taken] == [
        (first, "r1", "enqueue"),
        (second, "r1", "enqueue"),
    ]
    assert taken[1].body == {**TASK, "max_tasks": 7}
    assert owner.take_requests(["r1"]) == []  # taken once
    assert poster.collect_answer(first) is None  # taken, not answered

    assert owner.answer_request(first, {"ok": True, "task_id": "extra"})
    assert not owner.answer_request(first, {"ok": False})  # answered once
    assert not owner.answer_request(other, {"ok": True})  # never taken: not answerable
    assert poster.collect_answer(first) == {"ok": True, "task_id": "extra"}
    assert poster.collect_answer(first) is None  # collected: gone
    assert [r.id for r in owner.take_requests(["r2"])] == [other]


def test_of_two_replicas_taking_at_once_each_request_goes_to_one(
    postgres_db: str, stores: tuple[PostgresRunStore, PostgresRunStore]
) -> None:
    one, two = stores
    poster = PostgresRunStore(postgres_db)
    posted: list[int] = []
    got: dict[str, list[int]] = {"one": [], "two": []}
    done = threading.Event()

    def post() -> None:
        try:
            for i in range(100):  # while both replicas take
                posted.append(poster.post_request(f"r{i % 3}", "enqueue", TASK, expires_in=60))
        finally:
            done.set()

    def take(name: str, store: PostgresRunStore) -> None:
        for _ in range(10_000):  # bounded: ends when everything posted is taken
            got[name] += [r.id for r in store.take_requests(["r0", "r1", "r2"])]
            if done.is_set() and len(got["one"]) + len(got["two"]) >= len(posted):
                return

    threads = [threading.Thread(target=post)] + [
        threading.Thread(target=take, args=(n, s)) for n, s in (("one", one), ("two", two))
    ]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        poster.close()
    assert len(posted) == 100
    assert not set(got["one"]) & set(got["two"])
    assert sorted(got["one"] + got["two"]) == sorted(posted)


def test_a_pending_request_is_withdrawn_a_taken_one_is_not(
    stores: tuple[PostgresRunStore, PostgresRunStore],
) -> None:
    poster, owner = stores
    early = poster.post_request("r1", "enqueue", TASK, expires_in=60)
    assert poster.withdraw_request(early)
    assert not poster.withdraw_request(early)  # gone
    assert owner.take_requests(["r1"]) == []  # a withdrawn request is never taken

    late = poster.post_request("r1", "enqueue", TASK, expires_in=60)
    assert [r.id for r in owner.take_requests(["r1"])] == [late]
    assert not poster.withdraw_request(late)  # taken: its answer comes
    assert owner.answer_request(late, {"ok": False, "code": "dag_invalid", "message": "dup"})
    assert poster.collect_answer(late) == {"ok": False, "code": "dag_invalid", "message": "dup"}


def _age(dsn: str, ids: list[int], seconds: int) -> None:
    """Move the requests' expiry ``seconds`` into the past (the database's clock)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "UPDATE run_requests SET expires_at = clock_timestamp() - make_interval(secs => %s) "
            "WHERE id = ANY(%s)",
            (seconds, ids),
        )


def test_a_request_expires_at_its_posters_deadline_by_the_database_clock(
    postgres_db: str, stores: tuple[PostgresRunStore, PostgresRunStore]
) -> None:
    poster, owner = stores
    with pytest.raises(ValueError, match="expires_in"):
        poster.post_request("r1", "enqueue", TASK, expires_in=0)
    late = poster.post_request("r1", "enqueue", TASK, expires_in=7.5)
    with psycopg.connect(postgres_db) as conn:
        row = conn.execute(
            "SELECT expires_at - created_at FROM run_requests WHERE id = %s", (late,)
        ).fetchone()
    assert row is not None and row[0].total_seconds() == pytest.approx(7.5, abs=0.5)
    fresh = poster.post_request("r1", "enqueue", TASK, expires_in=60)
    _age(postgres_db, [late], 1)  # its poster's deadline has passed
    assert [r.id for r in owner.take_requests(["r1"])] == [fresh]  # never the expired one
    assert poster.withdraw_request(late)  # still pending: withdrawn (or purged) later


def test_requests_their_posters_gave_up_on_are_dropped_or_purged(
    postgres_db: str, stores: tuple[PostgresRunStore, PostgresRunStore]
) -> None:
    poster, owner = stores
    pending = poster.post_request("r1", "enqueue", TASK, expires_in=60)
    taken = poster.post_request("r2", "enqueue", TASK, expires_in=60)
    answered = poster.post_request("r3", "enqueue", TASK, expires_in=60)
    fresh = poster.post_request("r4", "enqueue", TASK, expires_in=60)
    assert [r.id for r in owner.take_requests(["r2", "r3", "r4"])] == [taken, answered, fresh]
    assert owner.answer_request(answered, {"ok": True, "task_id": "extra"})
    # pending, taken by a replica that died before answering, answered and never
    # collected: all expired two hours ago
    _age(postgres_db, [pending, taken, answered], 2 * 3600)
    assert owner.purge_requests(timedelta(hours=1)) == 3
    with psycopg.connect(postgres_db) as conn:
        left = conn.execute("SELECT id, state FROM run_requests").fetchall()
    assert left == [(fresh, "taken")]  # its poster still waits for it
    # a poster that gives up removes its request whatever its state
    assert poster.drop_request(fresh) is None  # taken, never answered
    assert not owner.answer_request(fresh, {"ok": True, "task_id": "extra"})
    answer = poster.post_request("r5", "enqueue", TASK, expires_in=60)
    assert [r.id for r in owner.take_requests(["r5"])] == [answer]
    assert owner.answer_request(answer, {"ok": True, "task_id": "extra"})
    assert poster.drop_request(answer) == {"ok": True, "task_id": "extra"}  # just in time
    assert poster.drop_request(answer) is None
    with psycopg.connect(postgres_db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM run_requests").fetchone() == (0,)


def test_a_database_of_the_previous_schema_is_migrated(postgres_db: str) -> None:
    assert SCHEMA_VERSION == 3
    with psycopg.connect(postgres_db) as conn, conn.transaction():  # what version 1 wrote
        for statement in MIGRATIONS[1]:
            conn.execute(statement)
        conn.execute(_VERSION_TABLE)
        conn.execute("INSERT INTO run_store_schema_version VALUES (1, 'feedfacecafe')")
        conn.execute(
            "INSERT INTO run_records VALUES ('kept', 'completed', now(), now(), NULL, '{}', NULL)"
        )
    store = PostgresRunStore(postgres_db)
    try:
        kept = store.load("kept")
        assert kept is not None and kept.state == "completed"
        request_id = store.post_request("kept", "enqueue", TASK, expires_in=60)
        assert [r.id for r in store.take_requests(["kept"])] == [request_id]
    finally:
        store.close()
    with psycopg.connect(postgres_db) as conn:
        rows = conn.execute("SELECT version, store_id FROM run_store_schema_version").fetchall()
    assert rows == [(3, "feedfacecafe")]  # the store keeps its id
    PostgresRunStore(postgres_db).close()  # and a second open migrates nothing


def _version_1(dsn: str) -> None:
    """A database as version 1 wrote it (no owner index, no mailbox)."""
    with psycopg.connect(dsn) as conn, conn.transaction():
        for statement in MIGRATIONS[1]:
            conn.execute(statement)
        conn.execute(_VERSION_TABLE)
        conn.execute("INSERT INTO run_store_schema_version VALUES (1, 'feedfacecafe')")


def test_a_development_database_with_the_mailbox_at_version_2_is_migrated(
    postgres_db: str,
) -> None:
    _version_1(postgres_db)
    with psycopg.connect(postgres_db) as conn, conn.transaction():  # that build's version 2
        conn.execute(
            """CREATE TABLE run_requests (
    id          BIGSERIAL PRIMARY KEY,
    run_id      TEXT NOT NULL,
    kind        TEXT NOT NULL,
    body        TEXT NOT NULL,
    state       TEXT NOT NULL DEFAULT 'pending'
                CHECK (state IN ('pending', 'taken', 'answered')),
    answer      TEXT,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    taken_at    TIMESTAMPTZ,
    answered_at TIMESTAMPTZ
)"""
        )
        conn.execute(
            "CREATE INDEX run_requests_pending ON run_requests (run_id) WHERE state = 'pending'"
        )
        conn.execute("INSERT INTO run_requests (run_id, kind, body) VALUES ('r1', 'enqueue', '{}')")
        conn.execute("UPDATE run_store_schema_version SET version = 2")
    store = PostgresRunStore(postgres_db)
    try:
        assert store.take_requests(["r1"]) == []  # that build's request: expired
        fresh = store.post_request("r1", "enqueue", TASK, expires_in=60)
        assert [r.id for r in store.take_requests(["r1"])] == [fresh]
        assert store.purge_requests(timedelta(0)) == 1  # the old one
    finally:
        store.close()
    with psycopg.connect(postgres_db) as conn:
        indexes = {r[0] for r in conn.execute("SELECT indexname FROM pg_indexes").fetchall()}
        version = conn.execute("SELECT version FROM run_store_schema_version").fetchall()
    assert "run_records_by_owner" in indexes  # which that version 2 did not have
    assert version == [(3,)]


def test_a_migration_outlasting_the_store_timeouts_completes(postgres_db: str) -> None:
    """Migration 2 indexes every run record: over a large table it takes longer than
    the store's statement timeout (twice ``timeout``), and it still completes."""
    _version_1(postgres_db)
    with psycopg.connect(postgres_db) as conn, conn.transaction():
        conn.execute(
            "INSERT INTO run_records SELECT 'r' || g, 'completed', now(), now(), NULL, "
            "json_build_object('_owner', 'k' || (g % 50), 'input', "
            "json_build_object('text', repeat('x', 1500)))::text, NULL "
            "FROM generate_series(1, 100000) g"
        )
    build = MIGRATIONS[2][0]
    took = []
    for _ in range(2):  # the second one warm, as the migration will be
        with psycopg.connect(postgres_db) as conn:
            conn.execute("BEGIN")
            started = time.perf_counter()
            conn.execute(build)
            took.append(time.perf_counter() - started)
            conn.execute("ROLLBACK")
    timeout = max(min(took) / 5, 0.01)  # its statement timeout: 2/5 of the build
    with psycopg.connect(postgres_db) as conn:  # under the store's session settings...
        conn.execute("BEGIN")
        conn.execute(f"SET LOCAL statement_timeout = {max(int(2000 * timeout), 1)}")
        with pytest.raises(psycopg.errors.QueryCanceled):  # ...the index is not built
            conn.execute(build)
        conn.execute("ROLLBACK")
    PostgresRunStore(postgres_db, timeout=timeout).close()  # but the migration is
    with psycopg.connect(postgres_db) as conn:
        indexes = {r[0] for r in conn.execute("SELECT indexname FROM pg_indexes").fetchall()}
        version = conn.execute("SELECT version FROM run_store_schema_version").fetchall()
    assert "run_records_by_owner" in indexes and version == [(3,)]


def test_a_replica_waits_for_another_ones_migration_past_its_lock_timeout(
    postgres_db: str,
) -> None:
    _version_1(postgres_db)
    migrating = psycopg.connect(postgres_db)  # another replica, migrating for 1.5 s
    migrating.execute("BEGIN")
    migrating.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
    done = threading.Timer(1.5, migrating.rollback)
    done.start()
    try:
        PostgresRunStore(postgres_db, timeout=0.2).close()  # waits more than 0.2 s
    finally:
        done.join(10)
        migrating.close()
    with psycopg.connect(postgres_db) as conn:
        version = conn.execute("SELECT version FROM run_store_schema_version").fetchall()
    assert version == [(3,)]
