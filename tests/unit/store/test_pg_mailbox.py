"""The PostgreSQL store's mailbox (``run_requests``): requests to the replica that
executes a run, each taken by one replica and answered once; and the migration of a
database written by the previous schema version."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta

import psycopg
import pytest

from langchain_runtime import PostgresRunStore
from langchain_runtime.store import RunMailbox
from langchain_runtime.store._pg import _VERSION_TABLE, MIGRATIONS, SCHEMA_VERSION

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
    first = poster.post_request("r1", "enqueue", TASK)
    second = poster.post_request("r1", "enqueue", {**TASK, "max_tasks": 7})
    other = poster.post_request("r2", "enqueue", TASK)
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
                posted.append(poster.post_request(f"r{i % 3}", "enqueue", TASK))
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
    early = poster.post_request("r1", "enqueue", TASK)
    assert poster.withdraw_request(early)
    assert not poster.withdraw_request(early)  # gone
    assert owner.take_requests(["r1"]) == []  # a withdrawn request is never taken

    late = poster.post_request("r1", "enqueue", TASK)
    assert [r.id for r in owner.take_requests(["r1"])] == [late]
    assert not poster.withdraw_request(late)  # taken: its answer comes
    assert owner.answer_request(late, {"ok": False, "code": "dag_invalid", "message": "dup"})
    assert poster.collect_answer(late) == {"ok": False, "code": "dag_invalid", "message": "dup"}


def test_requests_their_posters_gave_up_on_are_left_and_purged(
    postgres_db: str, stores: tuple[PostgresRunStore, PostgresRunStore]
) -> None:
    poster, owner = stores
    old = poster.post_request("r1", "enqueue", TASK)
    answered = poster.post_request("r1", "enqueue", TASK)
    fresh = poster.post_request("r1", "enqueue", TASK)
    with psycopg.connect(postgres_db, autocommit=True) as conn:
        conn.execute(
            "UPDATE run_requests SET created_at = created_at - interval '2 hours' "
            "WHERE id = ANY(%s)",
            ([old, answered],),
        )
        conn.execute("UPDATE run_requests SET state = 'answered', answer = '{}' WHERE id = %s",
                     (answered,))  # fmt: skip
    assert [r.id for r in owner.take_requests(["r1"], max_age=timedelta(hours=1))] == [fresh]
    assert owner.purge_requests(timedelta(hours=1)) == 2  # the stale pending one, the answer
    with psycopg.connect(postgres_db) as conn:
        left = conn.execute("SELECT id, state FROM run_requests").fetchall()
    assert left == [(fresh, "taken")]


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
        request_id = store.post_request("kept", "enqueue", TASK)
        assert [r.id for r in store.take_requests(["kept"])] == [request_id]
    finally:
        store.close()
    with psycopg.connect(postgres_db) as conn:
        rows = conn.execute("SELECT version, store_id FROM run_store_schema_version").fetchall()
    assert rows == [(3, "feedfacecafe")]  # the store keeps its id
    PostgresRunStore(postgres_db).close()  # and a second open migrates nothing
