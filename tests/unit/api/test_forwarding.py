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
from langchain_runtime.api.errors import PayloadTooLargeError, ReplicaUnavailableError
from langchain_runtime.api.schemas import RunRequest, TaskSpec
from langchain_runtime.api.server._manager import RunManager
from langchain_runtime.config import RuntimeConfig
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
    with pytest.raises(ReplicaUnavailableError, match=r"did not answer within 0\.3 s") as caught:
        other.enqueue(run_id, TaskSpec(id="extra", prompt="p", model="fast"))
    assert caught.value.status_code == 503 and caught.value.is_retryable
    assert replicas.requests() == []  # withdrawn
    assert owner.serve_requests() == 0  # so the owner, back, never adds it
    assert "extra" not in owner.status(run_id)["tasks"]


def test_a_run_that_ends_while_a_task_waits_answers_it_finished(
    replicas: Replicas, gate: Gate
) -> None:
    owner = replicas.start(request_poll_interval=DEAF)  # it answers only when the run ends
    other = replicas.start(forward_timeout=60)
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
