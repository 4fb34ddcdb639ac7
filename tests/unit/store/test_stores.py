"""What every run store does, the same way: run against SQLite and against PostgreSQL."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
from langchain_core.messages import AIMessage

from langchain_runtime import ResumeError, StoreError
from langchain_runtime.api.errors import RunExistsError
from langchain_runtime.api.store import RunRecord, RunStore
from langchain_runtime.store import DurableRunStore, SharedRunStore, decode, local_owner
from tests.unit.store._helpers import T0, Child, header, record
from tests.unit.store.conftest import Backend, Store

HOST = local_owner().partition("@")[2]


def test_one_class_serves_durable_runs_and_the_sidecar(store: Store) -> None:
    assert isinstance(store, DurableRunStore) and isinstance(store, RunStore)
    assert isinstance(store, SharedRunStore)


def test_wait_for_events_returns_what_another_writer_commits(store: Store) -> None:
    store.begin_run(header())
    store.commit("r1", [], [{"seq": 0, "type": "a"}])
    assert [e["type"] for e in store.wait_for_events("r1", -1, timeout=5)] == ["a"]
    assert store.wait_for_events("r1", 0, timeout=0.1, poll=0.05) == []

    def later() -> None:
        time.sleep(0.3)
        store.commit("r1", [], [{"seq": 1, "type": "b"}, {"seq": 2, "type": "c"}])

    writer = threading.Thread(target=later)
    writer.start()
    found = store.wait_for_events("r1", 0, timeout=60, poll=0.05)
    writer.join(10)
    assert [e["type"] for e in found] == ["b", "c"]


def test_a_committed_run_reads_back_after_reopening(backend: Backend) -> None:
    first = backend.open()
    first.begin_run(header(owner=local_owner()))
    first.commit(
        "r1",
        [record("a", cost="0.0015")],
        events=[{"seq": 0, "type": "run_started"}, {"seq": 1, "type": "task_completed"}],
        memory={"notes": {"k": 1}, "big": 1e20, "small": 2.0},
    )
    first.finish_run("r1", "failed", error={"code": "task_failed", "message": "b broke"})
    first.close()

    store = backend.open()
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
    assert run.memory == {"notes": {"k": 1}, "big": 1e20, "small": 2.0}
    assert isinstance(run.memory["big"], float)  # JSON comes back as it was written
    assert [e["type"] for e in store.run_events("r1")] == ["run_started", "task_completed"]
    assert store.run_events("r1", after=0) == [{"seq": 1, "type": "task_completed"}]


def test_commits_replace_tasks_upsert_memory_and_keep_events_once(store: Store) -> None:
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


def test_memory_deletes_are_stored(store: Store) -> None:
    from langchain_runtime.store import DELETED

    store.begin_run(header())
    store.commit("r1", [], memory={"a": 1, "b": 2})
    store.commit("r1", [], memory={"a": DELETED, "c": 3})
    assert store.load_run("r1").memory == {"b": 2, "c": 3}  # type: ignore[union-attr]


def test_a_new_run_with_a_taken_id_is_refused(store: Store) -> None:
    store.begin_run(header())
    with pytest.raises(RunExistsError):
        store.begin_run(header())


def test_writes_to_an_unknown_run_are_errors(store: Store) -> None:
    with pytest.raises(StoreError, match="lacks"):
        store.commit("ghost", [record("a")])
    with pytest.raises(StoreError, match="lacks"):
        store.finish_run("ghost", "completed")
    with pytest.raises(StoreError, match="lacks"):
        store.enqueue("ghost", {"task_id": "c", "spec": None}, {"deps": []})
    assert store.load_run("ghost") is None and store.run_events("ghost") == []
    assert not store.is_live("ghost")


def test_data_that_is_not_json_is_a_store_error(store: Store) -> None:
    store.begin_run(header())
    with pytest.raises(StoreError, match="memory 'k' is not JSON data"):
        store.commit("r1", [], memory={"k": float("nan")})


def test_resume_replaces_the_header_and_keeps_committed_tasks(store: Store) -> None:
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


def test_enqueued_tasks_are_part_of_the_run(store: Store) -> None:
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


def test_list_runs_pages_counts_and_sums_cost(store: Store) -> None:
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
    assert page[0].created_at == T0 + timedelta(minutes=4)


def test_runs_are_thread_safe(store: Store) -> None:
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


def test_sources_and_run_id_prefixes(store: Store) -> None:
    assert store.load_source("r1") is None
    store.save_source("r1", {"file": "/w/flow.yaml", "workflow": "main"})
    store.save_source("r1", {"file": "/w/flow.yaml", "workflow": "other"})
    assert store.load_source("r1") == {"file": "/w/flow.yaml", "workflow": "other"}
    for run_id in ("abc-1", "abc-2", "ab_x", "ABC-3"):
        store.begin_run(header(run_id))
    assert store.match_run_ids("abc") == ["abc-1", "abc-2"]
    assert store.match_run_ids("ab_") == ["ab_x"]  # _ and % are literal
    assert store.match_run_ids("abc-2") == ["abc-2"] and store.match_run_ids("zz") == []


def test_a_closed_store_refuses_work(store: Store) -> None:
    assert store.check() is None
    store.close()
    assert "closed" in (store.check() or "")
    with pytest.raises(StoreError, match="closed"):
        store.load_run("r1")


# -- liveness ------------------------------------------------------------------------------

CHILD_RUN = """
import sys
from langchain_runtime.store import PostgresRunStore, SQLiteRunStore, local_owner
from tests.unit.store._helpers import header, record
store = {open}
store.begin_run(header("live", owner=local_owner()))
store.commit("live", [record("a")])
print("ready", flush=True)
sys.stdin.read()
"""


def test_a_run_is_live_while_its_process_is_and_interrupted_after(
    backend: Backend, store: Store
) -> None:
    child = Child(CHILD_RUN.format(open=backend.child_open()))
    try:
        assert store.is_live("live")
        run = store.load_run("live")
        assert run is not None and (run.state, run.live) == ("running", True)
        assert run.header.owner == f"{child.pid}@{HOST}"
        with pytest.raises(ResumeError, match="still live"):
            store.begin_run(header("live", owner=local_owner()), resume=True)
        assert not store.claim("live", local_owner())
        assert [s.run_id for s in store.list_runs(state="running")[0]] == ["live"]
        assert store.mark_interrupted_stale() == []
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


def test_a_reused_pid_is_not_the_owner(backend: Backend, store: Store) -> None:
    child = Child(CHILD_RUN.format(open=backend.child_open()))
    try:
        assert store.is_live("live")
        # as if another process now had that pid
        backend.execute("UPDATE durable_runs SET owner_started = '1' WHERE run_id = 'live'")
        assert not store.is_live("live")
    finally:
        child.kill()


def test_a_run_owned_by_another_host_is_live_while_its_heartbeat_is_recent(
    backend: Backend,
) -> None:
    first = backend.open()
    first.begin_run(header("remote", owner="4242@elsewhere"))
    first.close()  # this process executes nothing now: only the heartbeat speaks
    other = backend.open()
    backend.age_heartbeat("remote", 30)
    assert other.is_live("remote")
    backend.age_heartbeat("remote", 600)
    assert not other.is_live("remote")
    other.heartbeat("remote")
    assert other.is_live("remote")


def test_a_run_is_live_to_other_processes_while_its_owner_is(backend: Backend) -> None:
    store = backend.open()
    store.begin_run(header(owner=local_owner()))
    code = f"""
        from langchain_runtime.store import PostgresRunStore, SQLiteRunStore
        s = {backend.child_open()}
        print("ready" if s.is_live("r1") else "not live", flush=True)
        """
    Child(code).stop()  # it printed "ready": seen from there, the run is live


def test_a_run_left_unfinished_by_a_closed_store_is_interrupted(backend: Backend) -> None:
    # what a restarted server whose pid is the same as before (pid 1 in a container) sees
    store = backend.open()
    store.begin_run(header(owner=local_owner()))
    store.close()
    again = backend.open()
    assert not again.is_live("r1")
    assert again.load_run("r1").state == "interrupted"  # type: ignore[union-attr]


def test_interrupt_run_ends_a_run_whose_owner_is_known_to_be_gone(backend: Backend) -> None:
    store = backend.open()
    store.begin_run(header("remote", owner="4242@elsewhere"))  # live by its heartbeat
    store.close()
    store = backend.open()
    assert store.is_live("remote")
    assert store.interrupt_run("remote") and not store.interrupt_run("remote")
    run = store.load_run("remote")
    assert run is not None and (run.state, run.live) == ("interrupted", False)
    assert store.list_runs(state="interrupted")[1] == 1
    store.begin_run(header("remote", owner=local_owner()), resume=True)
    assert store.is_live("remote") and store.load_run("remote").resumes == 1  # type: ignore[union-attr]


# -- claims, stale owners and fencing ----------------------------------------------------------


def test_claim_takes_a_run_nobody_executes_once(backend: Backend) -> None:
    a, b = backend.open(), backend.open()
    a.begin_run(header(owner="1@host-a"))
    a.commit("r1", [record("a")])
    a.finish_run("r1", "failed")
    assert b.claim("r1", "2@host-b")
    assert not a.claim("r1", "1@host-a")  # live: this process holds it (through b)
    assert not b.claim("r1", "2@host-b")  # a second claim of the same holder too
    run = a.load_run("r1")
    assert run is not None and (run.state, run.live, run.resumes) == ("running", True, 1)
    assert run.header.owner == "2@host-b"
    b.begin_run(header(owner="2@host-b"), resume=True)  # the holder begins it: no new claim
    assert b.load_run("r1").resumes == 1  # type: ignore[union-attr]
    b.commit("r1", [record("b")])
    b.finish_run("r1", "completed")
    assert not a.is_live("r1")
    with pytest.raises(ResumeError, match="no run 'ghost'"):
        a.claim("ghost", "1@host-a")


def test_a_claim_holds_the_run_while_its_graph_is_checked_and_can_be_let_go(
    backend: Backend,
) -> None:
    """claim, then load and check, then begin (or release): nobody else can resume the
    run between the load and the begin, so the loaded state is the state resumed."""
    a, b = backend.open(), backend.open()
    a.begin_run(header(owner="1@host-a"))
    a.commit("r1", [record("a")])
    a.finish_run("r1", "budget_exceeded", error={"code": "budget_exceeded"})
    assert a.claim("r1", "1@host-a")
    with pytest.raises(ResumeError, match="still live"):
        b.begin_run(header(owner="2@host-b"), resume=True)
    a.release("r1")  # the graph did not match, say: the run is as it was
    run = b.load_run("r1")
    assert run is not None and (run.state, run.live) == ("budget_exceeded", False)
    assert run.error == {"code": "budget_exceeded"}
    with pytest.raises(StoreError, match="not claimed"):
        a.release("r1")
    assert b.claim("r1", "2@host-b")
    b.begin_run(header(owner="2@host-b"), resume=True)
    b.finish_run("r1", "completed")
    assert b.load_run("r1").state == "completed"  # type: ignore[union-attr]


def test_concurrent_claims_in_one_process_give_the_run_to_one(backend: Backend) -> None:
    seed = backend.open()
    seed.begin_run(header(owner=local_owner()))
    seed.finish_run("r1", "failed")
    stores = [backend.open() for _ in range(4)]
    barrier = threading.Barrier(len(stores))
    won: list[bool] = []

    def claim(s: Store) -> None:
        barrier.wait(10)
        won.append(s.claim("r1", local_owner()))

    threads = [threading.Thread(target=claim, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(won) == [False, False, False, True]


def test_stale_runs_are_marked_interrupted_and_their_owner_is_fenced(backend: Backend) -> None:
    """A replica whose heartbeat went stale is declared dead: another marks its run
    interrupted, resumes it, and the first one's late writes are refused."""
    code = f"""
        import sys
        from langchain_runtime.store import PostgresRunStore, SQLiteRunStore
        from tests.unit.store._helpers import header, record
        store = {backend.child_open(stale_after=5.0)}
        store.begin_run(header("z", owner="7@replica-a"))
        store.commit("z", [record("a")], [{{"seq": 0, "type": "x"}}])
        print("ready", flush=True)
        for line in sys.stdin:
            try:
                getattr(store, line.strip())("z", *([[record("b")]] if "commit" in line else
                                                    ["completed"] if "finish" in line else []))
                print("ok", flush=True)
            except Exception as exc:
                print(type(exc).__name__ + ": " + str(exc), flush=True)
        """
    zombie = Child(code)

    def ask(what: str) -> str:
        assert zombie.proc.stdin is not None and zombie.proc.stdout is not None
        zombie.proc.stdin.write(what + "\n")
        zombie.proc.stdin.flush()
        return zombie.proc.stdout.readline().strip()

    survivor = backend.open(stale_after=5.0)
    try:
        assert survivor.is_live("z") and survivor.mark_interrupted_stale() == []
        assert ask("heartbeat") == "ok"
        later = datetime.now(timezone.utc) + timedelta(seconds=60)
        assert survivor.mark_interrupted_stale(now=later) == ["z"]
        run = survivor.load_run("z")
        assert run is not None and run.state == "interrupted" and not run.live
        assert run.error is not None and run.error["code"] == "interrupted"
        assert "7@replica-a" in run.error["message"]
        assert survivor.mark_interrupted_stale(now=later) == []  # once
        # the zombie wakes up: none of its writes land
        for what in ("commit", "heartbeat", "finish_run"):
            answer = ask(what)
            assert answer.startswith("StoreError") and "no longer owns it" in answer, answer
        run = survivor.load_run("z")
        assert run is not None and set(run.tasks) == {"a"} and run.state == "interrupted"
        survivor.begin_run(header("z", owner="8@replica-b"), resume=True)
        survivor.commit("z", [record("b")])
        survivor.finish_run("z", "completed")
        run = survivor.load_run("z")
        assert run is not None and (run.state, set(run.tasks), run.error) == (
            "completed",
            {"a", "b"},
            None,
        )
    finally:
        zombie.stop()


def test_a_claim_after_a_stale_heartbeat_supersedes_the_owner(backend: Backend) -> None:
    code = f"""
        import sys
        from langchain_runtime.store import PostgresRunStore, SQLiteRunStore
        from tests.unit.store._helpers import header, record
        store = {backend.child_open(stale_after=5.0)}
        store.begin_run(header("z", owner="7@replica-a"))
        print("ready", flush=True)
        sys.stdin.readline()
        try:
            store.commit("z", [record("a")])
            print("ok", flush=True)
        except Exception as exc:
            print(type(exc).__name__ + ": " + str(exc), flush=True)
        sys.stdin.read()
        """
    zombie = Child(code)
    other = backend.open(stale_after=5.0)
    try:
        assert not other.claim("z", "8@replica-b")  # its heartbeat is fresh
        backend.age_heartbeat("z", 60)
        assert other.claim("z", "8@replica-b")
        assert zombie.proc.stdin is not None and zombie.proc.stdout is not None
        zombie.proc.stdin.write("go\n")
        zombie.proc.stdin.flush()
        answer = zombie.proc.stdout.readline().strip()
        assert answer.startswith("StoreError") and "no longer owns it" in answer, answer
        assert other.load_run("z").tasks == {}  # type: ignore[union-attr]
    finally:
        zombie.stop()


def test_the_sidecar_records_share_the_store_and_its_events(store: Store) -> None:
    store.create(RunRecord("r1", "running", request={"workflow": "w"}))
    with pytest.raises(RunExistsError):
        store.create(RunRecord("r1", "running"))
    store.begin_run(header("r1"))
    store.save(RunRecord("r1", "running"), [{"seq": 0, "type": "api"}])
    store.commit("r1", [record("a")], [{"seq": 0, "type": "dup"}, {"seq": 1, "type": "durable"}])
    assert [e["type"] for e in store.events("r1")] == ["api", "durable"]
    assert store.load("r1").state == "running"  # type: ignore[union-attr]
    assert store.list()[1] == 1 and store.list_runs()[1] == 1


def test_sidecar_records_list_count_and_interrupt(store: Store) -> None:
    for i, state in enumerate(("completed", "running", "pending", "failed")):
        store.create(
            RunRecord(
                f"s{i}",
                state,
                created_at=T0 + timedelta(minutes=i),
                workflow="w",
                request={"n": i},
                status={"run_id": f"s{i}", "tasks": {"a": {"state": "running"}}},
            )
        )
    page, total = store.list(limit=2)
    assert total == 4 and [r.run_id for r in page] == ["s3", "s2"]
    assert page[0].created_at == T0 + timedelta(minutes=3) and page[0].request == {"n": 3}
    assert store.list(state="running")[1] == 1
    assert store.counts() == {"completed": 1, "running": 1, "pending": 1, "failed": 1}
    assert store.mark_interrupted("server stopped") == ["s1", "s2"]
    interrupted = store.load("s1")
    assert interrupted is not None and interrupted.state == "failed"
    assert interrupted.status is not None
    assert interrupted.status["error"]["code"] == "interrupted"
    assert interrupted.status["tasks"]["a"]["state"] == "cancelled"
    assert store.counts() == {"completed": 1, "failed": 3}
    assert store.load("nope") is None


def test_sidecar_records_list_one_owners_runs(store: Store) -> None:
    owners = ["ann", "bob", "ann", None, "ann", 7]  # None: no key; 7: not a key name
    for i, owner in enumerate(owners):
        request = {"n": i} if owner is None else {"n": i, "_owner": owner}
        store.create(RunRecord(f"o{i}", "completed" if i % 2 else "running",
                               created_at=T0 + timedelta(minutes=i), request=request))  # fmt: skip
    page, total = store.list(owner="ann", limit=2)  # type: ignore[call-arg]
    assert total == 3 and [r.run_id for r in page] == ["o4", "o2"]
    page, total = store.list(owner="ann", limit=2, offset=2)  # type: ignore[call-arg]
    assert total == 3 and [r.run_id for r in page] == ["o0"]
    assert store.list(owner="ann", state="running")[1] == 3  # type: ignore[call-arg]
    assert store.list(owner="bob", state="running")[1] == 0  # type: ignore[call-arg]
    assert [r.run_id for r in store.list(owner="bob")[0]] == ["o1"]  # type: ignore[call-arg]
    assert store.list(owner="nobody")[1] == 0  # type: ignore[call-arg]
    assert store.list()[1] == 6
