"""The run store's interface: what a durable run writes, and what resume reads back.

One store serves every entry point (the Python API, the CLI and the sidecar). It
keeps two kinds of rows per run:

* the **durable run** written by the orchestrator: a :class:`RunHeader` (input,
  policy with its budget, graph fingerprint), one :class:`TaskRecord` per committed
  task, the run memory and the event log. :meth:`DurableRunStore.commit` writes a
  batch commit in one durable transaction, before any dependent starts;
* the **API record** written by the sidecar (its request and last status), the
  :class:`~langchain_runtime.api.store.RunRecord` interface, kept beside it.

Values crossing this interface are JSON-able: outputs and memory values are already
encoded by :mod:`langchain_runtime.store._codec` (``encode`` / ``decode``).
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "DELETED",
    "DurableRunStore",
    "MailboxRequest",
    "RunHeader",
    "RunMailbox",
    "RunSummary",
    "SharedRunStore",
    "StoredRun",
    "TaskRecord",
]

#: A memory value in :meth:`DurableRunStore.commit` that deletes its key. No encoded
#: value looks like it: the codec tags every dict that has a ``$`` key.
DELETED: Mapping[str, Any] = {"$deleted": True}

#: Run states a store reports; ``interrupted`` is a run whose process died while it ran.
STORED_RUN_STATES = (
    "pending",
    "running",
    "completed",
    "failed",
    "aborted",
    "budget_exceeded",
    "timed_out",
    "interrupted",
)


@dataclass(frozen=True)
class RunHeader:
    """What a run is: written when it starts (and again, updated, when it resumes).

    Attributes:
        run_id: The run's id (a resumed run keeps its id).
        name: The run's name (the orchestrator's name or the workflow's).
        input: The run input, encoded (JSON-able).
        policy: ``RunPolicy.model_dump(mode="json")``: the budget is part of it.
        fingerprint: ``{task_id: {"deps": [...], "prompt": str|None, "model": str|None,
            "inputs": {...}|None}}`` for every task of the graph, enqueued ones included.
        enqueued: Tasks added to the live run, in order: ``{"task_id": ..., "spec": ...}``
            where ``spec`` is whatever the caller can rebuild the task from (the
            sidecar's declarative task JSON), or None.
        created_at: When the run was first started.
        owner: Who executes it now (``"pid@host"`` or a replica id): a store reports a
            run as live only while its owner is.
    """

    run_id: str
    name: str
    input: Mapping[str, Any]
    policy: Mapping[str, Any]
    fingerprint: Mapping[str, Any]
    created_at: datetime
    enqueued: Sequence[Mapping[str, Any]] = ()
    owner: str | None = None


@dataclass(frozen=True)
class TaskRecord:
    """A committed task.

    Attributes:
        task_id: The task.
        state: Its terminal state (``TaskState`` value).
        result: ``TaskResult.model_dump(mode="json")`` with ``output`` replaced by the
            encoded output.
    """

    task_id: str
    state: str
    result: Mapping[str, Any]


@dataclass(frozen=True)
class StoredRun:
    """A durable run as the store has it."""

    header: RunHeader
    state: str
    updated_at: datetime
    tasks: Mapping[str, TaskRecord] = field(default_factory=dict)
    memory: Mapping[str, Any] = field(default_factory=dict)
    error: Mapping[str, Any] | None = None
    resumes: int = 0
    live: bool = False


@dataclass(frozen=True)
class MailboxRequest:
    """A request to the replica executing a run, as :meth:`RunMailbox.take_requests`
    hands it over.

    Attributes:
        id: The request's id (to answer it).
        run_id: The run it is for.
        kind: What is asked (``"enqueue"``: add the task ``body``).
        body: The request's JSON data.
    """

    id: int
    run_id: str
    kind: str
    body: Mapping[str, Any]


@dataclass(frozen=True)
class RunSummary:
    """One line of :meth:`DurableRunStore.list_runs`."""

    run_id: str
    name: str
    state: str
    created_at: datetime
    updated_at: datetime
    tasks: int
    completed: int
    cost: str | None = None


@runtime_checkable
class DurableRunStore(Protocol):
    """Durable runs. Implementations are thread-safe; every write is one transaction."""

    def begin_run(self, header: RunHeader, *, resume: bool = False) -> None:
        """Record a run as ``running`` under ``header.owner``.

        A new run (``resume=False``) whose id exists raises ``RunExistsError``. With
        ``resume=True`` the stored run's header is replaced (a new budget, enqueued
        tasks), its ``resumes`` count grows by one and its committed tasks stay.
        """

    def commit(
        self,
        run_id: str,
        tasks: Sequence[TaskRecord],
        events: Sequence[Mapping[str, Any]] = (),
        memory: Mapping[str, Any] | None = None,
    ) -> None:
        """Write committed tasks, new events (by ``seq``) and memory writes (key ->
        encoded value, upserted; :data:`DELETED` removes the key) in one durable
        transaction. A task committed again (on resume) replaces its record."""

    def enqueue(self, run_id: str, task: Mapping[str, Any], fingerprint: Mapping[str, Any]) -> None:
        """Record a task added to a live run (``{"task_id", "spec"}`` and its fingerprint)."""

    def finish_run(
        self,
        run_id: str,
        state: str,
        error: Mapping[str, Any] | None = None,
        events: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        """Record the run's final state (and its last events); its owner lets go."""

    def load_run(self, run_id: str) -> StoredRun | None:
        """The durable run, or None if the store has no such run."""

    def run_events(self, run_id: str, after: int = -1) -> builtins.list[dict[str, Any]]:
        """The run's stored events with ``seq > after``, in order."""

    def list_runs(
        self, *, limit: int = 50, offset: int = 0, state: str | None = None
    ) -> tuple[builtins.list[RunSummary], int]:
        """A page of durable runs, newest first, and how many match ``state``."""

    def is_live(self, run_id: str) -> bool:
        """Whether the run is executing now (its owner alive), in any process."""

    def close(self) -> None:
        """Release resources (connections, locks)."""


@runtime_checkable
class SharedRunStore(DurableRunStore, Protocol):
    """A :class:`DurableRunStore` that several processes or replicas share safely.

    Both run stores are one (:class:`~langchain_runtime.store.SQLiteRunStore` for the
    processes of one host, :class:`~langchain_runtime.store.PostgresRunStore` across
    hosts). A run is executed by one owner at a time: ``begin_run(resume=True)``
    claims the run (two concurrent resumes: one gets ``ResumeError``), and the writes
    of an owner that was superseded (declared dead, then the run resumed or marked
    interrupted elsewhere) raise ``StoreError``.
    """

    stale_after: timedelta

    def claim(self, run_id: str, owner: str) -> bool:
        """Take stored run ``run_id`` for ``owner`` unless a live owner executes it.

        Atomic across processes: of concurrent claims, exactly one returns True. The
        run becomes ``running`` under ``owner``; the previous owner's writes are
        refused from then on. ``ResumeError`` if there is no such run.
        """

    def release(self, run_id: str) -> None:
        """Let go of a run taken with :meth:`claim` and not begun (its state restored)."""

    def heartbeat(self, run_id: str) -> None:
        """Show that this run's owner is alive (commits do it too)."""

    def mark_interrupted_stale(self, now: datetime | None = None) -> builtins.list[str]:
        """Mark ``interrupted`` every ``running`` run whose owner is gone (another host:
        heartbeat older than ``stale_after``; this host: process gone); their ids."""

    def wait_for_events(
        self, run_id: str, after: int = -1, timeout: float = 10.0, *, poll: float = 1.0
    ) -> builtins.list[dict[str, Any]]:
        """The run's events with ``seq > after``, waiting up to ``timeout`` for one."""


@runtime_checkable
class RunMailbox(Protocol):
    """Requests to the replica that executes a run, kept in a store replicas share.

    A replica asked to change a run that executes on another one posts a request
    and waits for its answer; the executing replica takes the requests to its runs,
    applies them and answers. Each request is taken once (of concurrent takers, one
    gets it) and answered once; one still pending can be withdrawn. A request expires
    at its poster's deadline: it is never taken after it.
    """

    def post_request(
        self, run_id: str, kind: str, body: Mapping[str, Any], *, expires_in: float
    ) -> int:
        """Post a request to the replica executing ``run_id``, takeable for
        ``expires_in`` seconds (the store's clock); the request's id."""

    def take_requests(self, run_ids: Sequence[str]) -> builtins.list[MailboxRequest]:
        """Take the pending requests (not expired) to any of ``run_ids``."""

    def answer_request(self, request_id: int, answer: Mapping[str, Any]) -> bool:
        """Answer a request taken with :meth:`take_requests` (False: it was not taken)."""

    def collect_answer(self, request_id: int) -> dict[str, Any] | None:
        """The answer to a request (removing it), or None while it is unanswered."""

    def withdraw_request(self, request_id: int) -> bool:
        """Remove a request still pending; False if it was taken (its answer will come)."""

    def drop_request(self, request_id: int) -> dict[str, Any] | None:
        """Remove a request whatever its state (its poster gives up); its answer if any."""

    def purge_requests(self, older_than: timedelta = ...) -> int:
        """Delete requests expired ``older_than`` ago (nobody will collect them); how many."""
