from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from langchain_runtime.api.errors import RunExistsError
from langchain_runtime.api.store import (
    INTERRUPTED_CODE,
    MemoryRunStore,
    RunRecord,
    RunStore,
    SqliteRunStore,
)

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunStore]:
    s: RunStore = (
        MemoryRunStore() if request.param == "memory" else SqliteRunStore(tmp_path / "runs.sqlite3")
    )
    yield s
    s.close()


def _record(i: int, state: str = "completed", **kw: object) -> RunRecord:
    return RunRecord(
        run_id=f"r{i:03d}",
        state=state,
        created_at=T0 + timedelta(seconds=i),
        updated_at=T0 + timedelta(seconds=i),
        request={"workflow": "w", "input": {"i": i}},
        **kw,  # type: ignore[arg-type]
    )


def test_both_stores_implement_the_protocol(store: RunStore) -> None:
    assert isinstance(store, RunStore)


def test_create_refuses_a_taken_id(store: RunStore) -> None:
    store.create(_record(1, "running"))
    with pytest.raises(RunExistsError):
        store.create(_record(1, "running"))


def test_save_replaces_the_record_and_appends_events_once(store: RunStore) -> None:
    store.create(_record(1, "running"))
    store.save(_record(1, "running"), [{"seq": 0, "type": "a"}, {"seq": 1, "type": "b"}])
    status = {"run_id": "r001", "state": "completed", "tasks": {"t": {"state": "completed"}}}
    store.save(
        _record(1, "completed", status=status), [{"seq": 1, "type": "b"}, {"seq": 2, "type": "c"}]
    )
    got = store.load("r001")
    assert got is not None
    assert (got.state, got.status, got.request) == (
        "completed",
        status,
        {"workflow": "w", "input": {"i": 1}},
    )
    assert got.created_at == T0 + timedelta(seconds=1)
    assert [e["type"] for e in store.events("r001")] == ["a", "b", "c"]
    assert [e["seq"] for e in store.events("r001", after=0)] == [1, 2]
    assert store.load("nope") is None and store.events("nope") == []


def test_list_pages_newest_first_and_filters_by_state(store: RunStore) -> None:
    for i in range(7):
        store.create(_record(i, "failed" if i % 3 == 0 else "completed"))
    page, total = store.list(limit=3, offset=0)
    assert total == 7 and [r.run_id for r in page] == ["r006", "r005", "r004"]
    page, _ = store.list(limit=3, offset=6)
    assert [r.run_id for r in page] == ["r000"]
    failed, total = store.list(limit=10, state="failed")
    assert total == 3 and [r.run_id for r in failed] == ["r006", "r003", "r000"]
    assert store.counts() == {"completed": 4, "failed": 3}


def test_unfinished_runs_are_marked_interrupted(store: RunStore) -> None:
    status = {
        "run_id": "r001",
        "state": "running",
        "tasks": {"a": {"state": "completed"}, "b": {"state": "running"}},
    }
    store.create(_record(1, "running", status=status))
    store.create(_record(2, "pending"))
    store.create(_record(3, "completed"))
    assert store.mark_interrupted("server died") == ["r001", "r002"]
    got = store.load("r001")
    assert got is not None and got.status is not None
    assert got.state == "failed" and got.status["state"] == "failed"
    assert got.status["error"]["code"] == INTERRUPTED_CODE
    assert got.status["error"]["message"] == "server died"
    assert got.status["tasks"]["a"]["state"] == "completed"
    assert got.status["tasks"]["b"]["state"] == "cancelled"
    assert store.load("r003").state == "completed"  # type: ignore[union-attr]
    assert store.mark_interrupted("again") == []


def test_sqlite_keeps_runs_across_reopening(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "runs.sqlite3"
    first = SqliteRunStore(path)
    first.create(_record(1, "running"))
    first.save(_record(1, "completed", status={"state": "completed"}), [{"seq": 0, "type": "x"}])
    first.close()
    second = SqliteRunStore(path)
    got = second.load("r001")
    assert got is not None and got.status == {"state": "completed"}
    assert second.events("r001") == [{"seq": 0, "type": "x"}]
    second.close()


def test_the_stores_are_thread_safe(store: RunStore) -> None:
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(20):
                rec = _record(n * 100 + i, "running")
                store.create(rec)
                store.save(rec, [{"seq": k, "type": "e"} for k in range(3)])
                store.load(rec.run_id)
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert store.list(limit=1)[1] == 160


def test_one_server_per_store_file(tmp_path: Path) -> None:
    from langchain_runtime import StoreError

    path = tmp_path / "runs.sqlite3"
    first = SqliteRunStore(path, exclusive=True)
    with pytest.raises(StoreError, match="in use by another server"):
        SqliteRunStore(path, exclusive=True)
    SqliteRunStore(path).close()  # readers that do not claim the file are fine
    first.close()
    SqliteRunStore(path, exclusive=True).close()  # free again once the first closed
