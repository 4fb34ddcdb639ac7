"""A task added through one replica to a run executing on another (one PostgreSQL
database, two ``RunManager`` replicas in this process): the caller gets the executing
replica's answer, or a clear error when it cannot."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

pytest.importorskip("psycopg", reason="needs the 'postgres' extra")

from langchain_runtime import (
    GraphValidationError,
    InvalidInputError,
    PostgresRunStore,
    RunAbortedError,
    RunFinishedError,
)
from langchain_runtime.api.errors import (
    EnqueueUnknownError,
    PayloadTooLargeError,
    ReplicaUnavailableError,
)
from langchain_runtime.api.schemas import RunRequest, TaskAccepted, TaskSpec
from langchain_runtime.api.server import _forward
from langchain_runtime.api.server._forward import Forwarder
from langchain_runtime.api.server._manager import RunManager
from langchain_runtime.config import RuntimeConfig
from langchain_runtime.errors import StoreError
from tests.unit.api._helpers import Gate, wait_for

pytestmark = pytest.mark.postgres

#: A replica that never reads its mailbox (as if it were cut off from the database).
DEAF = 3600.0


class Replicas:
    """Replicas (each a RunManager on its own PostgresRunStore) on one database."""

    def __init__(self, dsn: str, config: RuntimeConfig, gate: Gate) -> None:
        self.dsn, self.config, self.gate = dsn, config, gate
        self.managers: list[RunManager] = []

    def start(self, **kw: Any) -> RunManager:
        manager = RunManager(
            self.config,
            PostgresRunStore(self.dsn),
            workflows={"gated": self.gate.orchestrator()},
            own_store=True,
            checkpoint_interval=0.05,
            **kw,
        )
        self.managers.append(manager)
        return manager

    def close(self) -> None:
        self.gate.event.set()
        for manager in self.managers:
            manager.close(timeout=10)

    def requests(self) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.dsn) as conn:
            return conn.execute("SELECT run_id, state FROM run_requests").fetchall()


@pytest.fixture
def replicas(postgres_db: str, config: RuntimeConfig, gate: Gate) -> Iterator[Replicas]:
    made = Replicas(postgres_db, config, gate)
    yield made
    made.close()


def _held_run(owner: RunManager, gate: Gate) -> str:
    """A run executing on ``owner``, held at its first task until the gate opens."""
    run_id = owner.submit(RunRequest(workflow="gated")).run_id
    assert gate.started.wait(10)
    return run_id


def _ended(owner: RunManager, reader: RunManager, run_id: str) -> dict[str, Any]:
    """The run's final status as ``reader`` has it, once ``owner`` has saved it.

    Waited for on the owner: two replicas in one process share a pid, so another one
    reading a run at the instant it ends can take it for a dead process's run.
    """
    wait_for(lambda: owner.status(run_id)["state"] not in ("pending", "running", "aborting"))
    return reader.status(run_id)


def test_a_task_added_through_another_replica_joins_the_run(replicas: Replicas, gate: Gate) -> None:
    owner, other = replicas.start(), replicas.start()
    run_id = _held_run(owner, gate)
    spec = TaskSpec(id="extra", prompt="More on {after}", model="fast", deps=["after"])
    accepted = other.enqueue(run_id, spec)
    assert (accepted.run_id, accepted.task_id) == (run_id, "extra")
    assert "extra" in owner.status(run_id)["tasks"]  # the owner's live run has it
    assert "extra" in other.status(run_id)["tasks"]  # and the stored run, read elsewhere
    gate.event.set()
    done = _ended(owner, other, run_id)
    assert done["state"] == "completed"
    assert done["tasks"]["extra"]["state"] == "completed"
    assert replicas.requests() == []  # the answer was collected with its request


def test_a_refusal_is_the_error_the_executing_replica_gives(replicas: Replicas, gate: Gate) -> None:
    owner, other = replicas.start(), replicas.start()
    run_id = _held_run(owner, gate)
    for spec in (
        TaskSpec(id="hold", prompt="p", model="fast"),  # a duplicate id
        TaskSpec(id="x", prompt="p", model="fast", deps=["nope"]),  # an unknown dependency
    ):
        with pytest.raises(GraphValidationError) as here:
            owner.enqueue(run_id, spec)
        with pytest.raises(GraphValidationError) as there:
            other.enqueue(run_id, spec)
        assert there.value.code == here.value.code
        assert str(there.value) == str(here.value)
    with pytest.raises(PayloadTooLargeError, match="has 2 tasks"):  # the owner's count
        other.enqueue(run_id, TaskSpec(id="y", prompt="p", model="fast"), max_tasks=2)
    assert set(owner.status(run_id)["tasks"]) == {"hold", "after"}


def test_an_unanswered_task_is_withdrawn_and_not_added(replicas: Replicas, gate: Gate) -> None:
    owner = replicas.start(request_poll_interval=DEAF)
    other = replicas.start(forward_timeout=0.3)
    run_id = _held_run(owner, gate)
    with pytest.raises(ReplicaUnavailableError, match=r"did not take task 'extra' within 0\.3 s"):
        other.enqueue(run_id, TaskSpec(id="extra", prompt="p", model="fast"))
    assert replicas.requests() == []  # withdrawn
    assert owner.serve_requests() == 0  # so the owner, back, never adds it
    assert "extra" not in owner.status(run_id)["tasks"]


def test_a_run_that_ends_while_a_task_waits_answers_it_finished(
    replicas: Replicas, gate: Gate, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the caller never checks the run itself: the answer is the owner's refusal
    monkeypatch.setattr(_forward, "LIVENESS_CHECK", DEAF)
    owner = replicas.start(request_poll_interval=DEAF)  # it answers only when the run ends
    other = replicas.start(forward_timeout=30)
    run_id = _held_run(owner, gate)
    caught: list[BaseException] = []

    def add() -> None:
        try:
            other.enqueue(run_id, TaskSpec(id="extra", prompt="p", model="fast"))
        except BaseException as exc:  # collected for the assertion below
            caught.append(exc)

    waiter = threading.Thread(target=add)
    waiter.start()
    wait_for(lambda: replicas.requests() == [(run_id, "pending")])
    owner.abort(run_id)
    waiter.join(30)
    assert not waiter.is_alive()
    assert len(caught) == 1 and isinstance(caught[0], RunAbortedError), caught
    assert caught[0].code == "run_aborted"
    assert _ended(owner, other, run_id)["state"] == "aborted"


def test_refusals_made_without_asking_the_executing_replica(replicas: Replicas, gate: Gate) -> None:
    owner, other = replicas.start(request_poll_interval=DEAF), replicas.start()
    run_id = _held_run(owner, gate)
    with pytest.raises(InvalidInputError, match="no-such-model") as unknown:  # as there
        other.enqueue(run_id, TaskSpec(id="x", prompt="p", model="no-such-model"))
    with pytest.raises(InvalidInputError) as there:
        owner.enqueue(run_id, TaskSpec(id="x", prompt="p", model="no-such-model"))
    assert (unknown.value.code, str(unknown.value)) == (there.value.code, str(there.value))
    assert other.abort(run_id).state == "aborting"  # asked through the store
    with pytest.raises(RunAbortedError, match="being aborted"):
        other.enqueue(run_id, TaskSpec(id="y", prompt="p", model="fast"))
    assert replicas.requests() == []  # nothing was posted
    assert _ended(owner, other, run_id)["state"] == "aborted"
    with pytest.raises(RunAbortedError, match="was aborted"):
        other.enqueue(run_id, TaskSpec(id="z", prompt="p", model="fast"))
    done = owner.submit(RunRequest(workflow="hello", input={"name": "Ada"})).run_id
    assert _ended(owner, other, done)["state"] == "completed"
    with pytest.raises(RunFinishedError, match="finished") as finished:
        other.enqueue(done, TaskSpec(id="z", prompt="p", model="fast"))
    assert finished.value.code == "run_completed"


def test_a_task_taken_but_not_answered_in_time_is_an_unknown_outcome(
    replicas: Replicas, gate: Gate
) -> None:
    owner = replicas.start()
    other = replicas.start(forward_timeout=0.3)
    run_id = _held_run(owner, gate)
    adding, release = threading.Event(), threading.Event()
    real = owner._add_forwarded

    def slow(run_id: str, spec: TaskSpec, max_tasks: int | None) -> TaskAccepted:
        adding.set()  # taken: the owner is adding it (e.g. a slow store write)
        assert release.wait(30)
        return real(run_id, spec, max_tasks)

    owner._add_forwarded = slow  # type: ignore[method-assign]
    try:
        with pytest.raises(EnqueueUnknownError) as caught:
            other.enqueue(run_id, TaskSpec(id="extra", prompt="p", model="fast"))
    finally:
        release.set()
    assert adding.is_set()
    err = caught.value
    assert (err.code, err.status_code, err.is_retryable) == ("enqueue_unknown", 504, False)
    assert "took task 'extra' but did not answer within 0.3 s" in str(err)
    assert f"GET /api/v1/runs/{run_id} shows whether it was added" in str(err)
    assert ReplicaUnavailableError.is_retryable  # unlike the 503: not added, retry
    # indeed the owner adds it after the caller gave up; the caller's row is gone
    wait_for(lambda: "extra" in owner.status(run_id)["tasks"])
    assert replicas.requests() == []


def test_a_request_that_could_not_be_withdrawn_expires_unapplied(
    replicas: Replicas, gate: Gate, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = replicas.start(request_poll_interval=DEAF)
    other = replicas.start(forward_timeout=0.3)
    run_id = _held_run(owner, gate)

    def blip(request_id: int) -> Any:
        raise StoreError("run store cannot be used: the database could not be reached")

    # the database does not answer the caller once its deadline has come
    monkeypatch.setattr(other.store, "withdraw_request", blip)
    monkeypatch.setattr(other.store, "drop_request", blip)
    with pytest.raises(EnqueueUnknownError, match="could not be withdrawn") as caught:
        other.enqueue(run_id, TaskSpec(id="extra", prompt="p", model="fast"))
    assert not caught.value.is_retryable
    assert replicas.requests() == [(run_id, "pending")]  # left behind, but expired:
    assert owner.serve_requests() == 0  # the owner, back, never takes it
    assert "extra" not in owner.status(run_id)["tasks"]


def test_a_task_added_right_after_submit_is_forwarded_to_the_run_not_begun_yet(
    replicas: Replicas, gate: Gate, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner, other = replicas.start(), replicas.start()
    begin, checked = threading.Event(), threading.Event()
    real_begin = owner.store.begin_run

    def held_begin(*args: Any, **kwargs: Any) -> None:
        assert begin.wait(30)  # the durable run begins only once the caller checked
        real_begin(*args, **kwargs)

    real_gone = Forwarder._gone

    def gone(self: Forwarder, run_id: str) -> bool:
        found = real_gone(self, run_id)
        if not found:
            checked.set()  # the caller checked the run not begun: it still executes
        return found

    monkeypatch.setattr(owner.store, "begin_run", held_begin)
    monkeypatch.setattr(Forwarder, "_gone", gone)
    run_id = owner.submit(RunRequest(workflow="gated")).run_id
    assert other.store.load_run(run_id) is None  # not begun: its record is pending
    threading.Thread(target=lambda: checked.wait(30) and begin.set(), daemon=True).start()
    accepted = other.enqueue(run_id, TaskSpec(id="extra", prompt="p", model="fast"))
    assert (accepted.run_id, accepted.task_id) == (run_id, "extra")
    assert checked.is_set()
    assert gate.started.wait(10)
    assert "extra" in owner.status(run_id)["tasks"]
    gate.event.set()
    done = _ended(owner, other, run_id)
    assert done["state"] == "completed" and done["tasks"]["extra"]["state"] == "completed"


def test_a_run_aborted_right_after_submit_through_another_replica_aborts(
    replicas: Replicas, gate: Gate, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner, other = replicas.start(), replicas.start()
    begin = threading.Event()
    real_begin = owner.store.begin_run

    def held_begin(*args: Any, **kwargs: Any) -> None:
        assert begin.wait(30)
        real_begin(*args, **kwargs)

    monkeypatch.setattr(owner.store, "begin_run", held_begin)
    run_id = owner.submit(RunRequest(workflow="gated")).run_id
    assert other.store.load_run(run_id) is None  # not begun yet
    assert other.abort(run_id).state == "aborting"
    with pytest.raises(RunAbortedError, match="being aborted"):  # as for a live run
        other.enqueue(run_id, TaskSpec(id="y", prompt="p", model="fast"))
    begin.set()
    assert _ended(owner, other, run_id)["state"] == "aborted"  # as it began


def test_forwards_waiting_at_once_are_capped(replicas: Replicas, gate: Gate) -> None:
    owner, other = replicas.start(request_poll_interval=DEAF), replicas.start()
    run_id = _held_run(owner, gate)
    forwarder = Forwarder(other.store, other.store, other.store, timeout=5, max_waiting=1)
    caught: list[BaseException] = []

    def first() -> None:
        try:
            forwarder.forward(run_id, None, TaskSpec(id="a", prompt="p", model="fast"), None)
        except BaseException as exc:  # collected for the assertions below
            caught.append(exc)

    waiter = threading.Thread(target=first)
    waiter.start()
    wait_for(lambda: replicas.requests() == [(run_id, "pending")])  # it holds the slot
    with pytest.raises(ReplicaUnavailableError, match="too many tasks waiting to be forwarded"):
        forwarder.forward(run_id, None, TaskSpec(id="b", prompt="p", model="fast"), None)
    assert replicas.requests() == [(run_id, "pending")]  # the second posted nothing
    waiter.join(30)
    assert not waiter.is_alive()
    assert len(caught) == 1 and isinstance(caught[0], ReplicaUnavailableError), caught
    assert replicas.requests() == []  # withdrawn
