from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from langchain_core.messages import AIMessage

from langchain_runtime import ResumeError, SQLiteRunStore, StoreError
from langchain_runtime.api.errors import RunExistsError
from langchain_runtime.api.store import RunRecord, RunStore, SqliteRunStore
from langchain_runtime.store import DurableRunStore, decode, local_owner
from tests.unit.store._helpers import T0, Child, header, record


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "runs.db"


@pytest.fixture
def store(path: Path) -> Iterator[SQLiteRunStore]:
    s = SQLiteRunStore(path)
    yield s
    s.close()


def test_one_class_serves_durable_runs_and_the_sidecar(store: SQLiteRunStore) -> None:
    assert isinstance(store, DurableRunStore) and isinstance(store, RunStore)
    assert SqliteRunStore is SQLiteRunStore


def test_a_committed_run_reads_back_after_reopening(path: Path) -> None:
    first = SQLiteRunStore(path)
    first.begin_run(header(owner=local_owner()))
    first.commit(
        "r1",
        [record("a", cost="0.0015")],
        events=[{"seq": 0, "type": "run_started"}, {"seq": 1, "type": "task_completed"}],
        memory={"notes": {"k": 1}},
    )
    first.finish_run("r1", "failed", error={"code": "task_failed", "message": "b broke"})
    first.close()

    store = SQLiteRunStore(path)
    run = store.load_run("r1")
    assert run is not None
    assert (run.state, run.live, run.resumes) == ("failed", False, 0)
    assert run.error == {"code": "task_failed", "message": "b broke"}
    assert run.header == header(owner=local_owner())
    assert set(run.tasks) == {"a"}
    result = run.tasks["a"].result
    assert result["cost"]["amount"] == "0.0015" and result["usage"]["input_tokens"] == 10
    out = decode(result["output"])
    assert isinstance(out, AIMessage) and out.content == "out of a" and out.id == "m-a"
    assert run.memory == {"notes": {"k": 1}}
    assert [e["type"] for e in store.run_events("r1")] == ["run_started", "task_completed"]
    assert store.run_events("r1", after=0) == [{"seq": 1, "type": "task_completed"}]
    store.close()


def test_commits_replace_tasks_upsert_memory_and_keep_events_once(store: SQLiteRunStore) -> None:
    store.begin_run(header())
    store.commit("r1", [record("a", "failed", cost="0.002")], [{"seq": 0, "type": "x"}], {"k": 1})
    store.commit(
        "r1",
        [record("a", "completed", cost="0.003")],
        [{"seq": 0, "type": "again"}, {"seq": 1, "type": "y"}],
        {"k": 2, "j": 3},
    )
    run = store.load_run("r1")
    assert run is not None
    assert (
        run.tasks["a"].state == "completed" and run.tasks["a"].result["cost"]["amount"] == "0.003"
    )
    assert run.memory == {"j": 3, "k": 2}
    assert [e["type"] for e in store.run_events("r1")] == ["x", "y"]


def test_a_new_run_with_a_taken_id_is_refused(store: SQLiteRunStore) -> None:
    store.begin_run(header())
    with pytest.raises(RunExistsError):
        store.begin_run(header())


def test_writes_to_an_unknown_run_are_errors(store: SQLiteRunStore) -> None:
    with pytest.raises(StoreError, match="lacks"):
        store.commit("ghost", [record("a")])
    with pytest.raises(StoreError, match="lacks"):
        store.finish_run("ghost", "completed")
    assert store.load_run("ghost") is None and store.run_events("ghost") == []


def test_resume_replaces_the_header_and_keeps_committed_tasks(store: SQLiteRunStore) -> None:
    store.begin_run(header(owner=local_owner()))
    store.commit("r1", [record("a")])
    with pytest.raises(ResumeError, match="still live"):
        store.begin_run(header(owner=local_owner()), resume=True)
    store.finish_run("r1", "budget_exceeded", error={"code": "budget_exceeded"})
    topped = header(owner=local_owner(), policy={"budget": {"max_cost": "2"}})
    store.begin_run(topped, resume=True)
    run = store.load_run("r1")
    assert run is not None
    assert (run.state, run.live, run.resumes, run.error) == ("running", True, 1, None)
    assert run.header.policy == {"budget": {"max_cost": "2"}}
    assert run.header.created_at == T0
    assert set(run.tasks) == {"a"}
    store.finish_run("r1", "completed")
    store.begin_run(topped, resume=True)  # a resumed run resumes again
    assert store.load_run("r1").resumes == 2  # type: ignore[union-attr]
    with pytest.raises(ResumeError, match="no run 'nope'"):
        store.begin_run(header("nope"), resume=True)


def test_enqueued_tasks_are_part_of_the_run(store: SQLiteRunStore) -> None:
    store.begin_run(header())
    entry = {"deps": ["b"], "prompt": "more", "model": "m", "inputs": None}
    store.enqueue("r1", {"task_id": "c", "spec": {"id": "c", "prompt": "more"}}, entry)
    store.enqueue(
        "r1",
        {"task_id": "d", "spec": None},
        {"d": {"deps": [], "prompt": None, "model": None, "inputs": None}},
    )
    run = store.load_run("r1")
    assert run is not None
    assert [e["task_id"] for e in run.header.enqueued] == ["c", "d"]
    assert run.header.enqueued[0]["spec"] == {"id": "c", "prompt": "more"}
    assert run.header.fingerprint["c"] == entry
    assert run.header.fingerprint["d"]["deps"] == []
    summary = store.list_runs()[0][0]
    assert summary.tasks == 4
    # a resume's header carries the enqueued tasks it rebuilt; the old list is replaced
    fp = dict(run.header.fingerprint)
    store.finish_run("r1", "aborted")
    store.begin_run(
        replace(run.header, fingerprint=fp, enqueued=run.header.enqueued[:1]), resume=True
    )
    again = store.load_run("r1")
    assert again is not None and [e["task_id"] for e in again.header.enqueued] == ["c"]


def test_list_runs_pages_counts_and_sums_cost(store: SQLiteRunStore) -> None:
    for i in range(5):
        store.begin_run(header(f"r{i}", created_at=T0 + timedelta(minutes=i)))
        store.commit(f"r{i}", [record("a", cost="0.25"), record("b", "failed", cost="0.5")])
        store.finish_run(f"r{i}", "completed" if i % 2 else "failed")
    page, total = store.list_runs(limit=2)
    assert total == 5 and [s.run_id for s in page] == ["r4", "r3"]
    assert (page[0].tasks, page[0].completed, page[0].cost) == (2, 1, "0.75")
    failed, total = store.list_runs(state="failed", limit=10)
    assert total == 3 and [s.run_id for s in failed] == ["r4", "r2", "r0"]
    assert store.list_runs(offset=4)[0][0].run_id == "r0"


def test_runs_are_thread_safe(store: SQLiteRunStore) -> None:
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            store.begin_run(header(f"t{n}"))
            for i in range(10):
                store.commit(f"t{n}", [record(f"x{i}")], [{"seq": i, "type": "e"}])
            store.finish_run(f"t{n}", "completed")
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert {s.completed for s in store.list_runs(limit=10)[0]} == {10}


# -- liveness ------------------------------------------------------------------------------

CHILD_RUN = """
import sys
from langchain_runtime.store import SQLiteRunStore, local_owner
from tests.unit.store._helpers import header, record
store = SQLiteRunStore(sys.argv[1] if len(sys.argv) > 1 else {path!r})
store.begin_run(header("live", owner=local_owner()))
store.commit("live", [record("a")])
print("ready", flush=True)
sys.stdin.read()
"""


def test_a_run_is_live_while_its_process_is_and_interrupted_after(
    path: Path, store: SQLiteRunStore
) -> None:
    child = Child(CHILD_RUN.format(path=str(path)))
    try:
        assert store.is_live("live")
        run = store.load_run("live")
        assert run is not None and (run.state, run.live) == ("running", True)
        assert run.header.owner == f"{child.pid}@{local_owner().partition('@')[2]}"
        with pytest.raises(ResumeError, match="still live"):
            store.begin_run(header("live", owner=local_owner()), resume=True)
        assert [s.run_id for s in store.list_runs(state="running")[0]] == ["live"]
    finally:
        child.kill()  # SIGKILL: no finish_run
    assert not store.is_live("live")
    run = store.load_run("live")
    assert run is not None and (run.state, run.live) == ("interrupted", False)
    assert set(run.tasks) == {"a"}  # the commit before the kill is kept
    assert store.list_runs(state="running") == ([], 0)
    interrupted, total = store.list_runs(state="interrupted")
    assert total == 1 and interrupted[0].state == "interrupted" and interrupted[0].completed == 1
    store.begin_run(header("live", owner=local_owner()), resume=True)  # resumable
    assert store.is_live("live")


def test_a_reused_pid_is_not_the_owner(path: Path, store: SQLiteRunStore) -> None:
    child = Child(CHILD_RUN.format(path=str(path)))
    try:
        assert store.is_live("live")
        with sqlite3.connect(path) as db:  # as if another process now had that pid
            db.execute("UPDATE durable_runs SET owner_started = '1' WHERE run_id = 'live'")
        assert not store.is_live("live")
    finally:
        child.kill()


def test_a_run_owned_by_another_host_is_live_while_its_heartbeat_is_recent(
    path: Path, store: SQLiteRunStore
) -> None:
    store.begin_run(header("remote", owner="4242@elsewhere"))
    store.close()  # this process executes nothing now: only the heartbeat speaks
    other = SQLiteRunStore(path)
    try:
        with sqlite3.connect(path) as db:
            db.execute(
                "UPDATE run_beats SET heartbeat_at = ? WHERE run_id = 'remote'",
                ((T0.now(T0.tzinfo) - timedelta(seconds=30)).isoformat(),),
            )
        assert other.is_live("remote")
        with sqlite3.connect(path) as db:
            db.execute(
                "UPDATE run_beats SET heartbeat_at = ? WHERE run_id = 'remote'",
                ((T0.now(T0.tzinfo) - timedelta(minutes=10)).isoformat(),),
            )
        assert not other.is_live("remote")
        other.heartbeat("remote")
        assert other.is_live("remote")
    finally:
        other.close()


def test_a_run_is_live_to_other_processes_while_its_owner_is(path: Path) -> None:
    store = SQLiteRunStore(path)
    store.begin_run(header(owner=local_owner()))
    code = f"""
        from langchain_runtime.store import SQLiteRunStore
        s = SQLiteRunStore({str(path)!r})
        print("ready" if s.is_live("r1") else "not live", flush=True)
        """
    Child(code).stop()  # it printed "ready": seen from there, the run is live
    store.close()


def test_a_run_left_unfinished_by_a_closed_store_is_interrupted(path: Path) -> None:
    # what a restarted server whose pid is the same as before (pid 1 in a container) sees
    store = SQLiteRunStore(path)
    store.begin_run(header(owner=local_owner()))
    store.close()
    again = SQLiteRunStore(path)
    assert not again.is_live("r1")
    assert again.load_run("r1").state == "interrupted"  # type: ignore[union-attr]
    again.close()


# -- the sidecar's records share the file ---------------------------------------------------


def test_api_records_and_durable_runs_share_a_file_and_events(store: SQLiteRunStore) -> None:
    store.create(RunRecord("r1", "running", request={"workflow": "w"}))
    store.begin_run(header("r1"))
    store.save(RunRecord("r1", "running"), [{"seq": 0, "type": "api"}])
    store.commit("r1", [record("a")], [{"seq": 0, "type": "dup"}, {"seq": 1, "type": "durable"}])
    assert [e["type"] for e in store.events("r1")] == ["api", "durable"]
    assert store.load("r1").state == "running"  # type: ignore[union-attr]
    assert store.list()[1] == 1 and store.list_runs()[1] == 1


def test_check_reports_a_healthy_store_and_a_deleted_file(path: Path) -> None:
    store = SQLiteRunStore(path)
    assert store.check() is None
    path.unlink()
    problem = store.check()
    assert problem is not None and str(path) in problem and "deleted or replaced" in problem
    store.close()
    assert "closed" in (store.check() or "")
    with pytest.raises(StoreError, match="closed"):
        store.load_run("r1")


def test_memory_store_works_without_a_file() -> None:
    store = SQLiteRunStore(":memory:")
    store.begin_run(header())
    store.finish_run("r1", "completed")
    assert store.load_run("r1").state == "completed"  # type: ignore[union-attr]
    assert store.check() is None
    store.close()


def test_sources_and_run_id_prefixes(store: SQLiteRunStore) -> None:
    assert store.load_source("r1") is None
    store.save_source("r1", {"file": "/w/flow.yaml", "workflow": "main"})
    assert store.load_source("r1") == {"file": "/w/flow.yaml", "workflow": "main"}
    for run_id in ("abc-1", "abc-2", "ab_x", "ABC-3"):
        store.begin_run(header(run_id))
    assert store.match_run_ids("abc") == ["abc-1", "abc-2"]
    assert store.match_run_ids("ab_") == ["ab_x"]  # _ and % are literal
    assert store.match_run_ids("abc-2") == ["abc-2"] and store.match_run_ids("zz") == []


def test_interrupt_run_ends_a_run_whose_owner_is_known_to_be_gone(path: Path) -> None:
    store = SQLiteRunStore(path)
    store.begin_run(header("remote", owner="4242@elsewhere"))  # live by its heartbeat
    store.close()
    store = SQLiteRunStore(path)
    assert store.is_live("remote")
    assert store.interrupt_run("remote") and not store.interrupt_run("remote")
    run = store.load_run("remote")
    assert run is not None and (run.state, run.live) == ("interrupted", False)
    assert store.list_runs(state="interrupted")[1] == 1
    store.begin_run(header("remote", owner=local_owner()), resume=True)
    assert store.is_live("remote") and store.load_run("remote").resumes == 1  # type: ignore[union-attr]
    store.close()
