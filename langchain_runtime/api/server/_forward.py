"""Tasks added through one replica to a run executing on another, through the mailbox.

Both sides of ``POST /api/v1/runs/{id}/tasks`` on a shared store
(:class:`~langchain_runtime.store.RunMailbox`, see :mod:`._replicas`):

* the replica that was asked posts the request and waits for the answer
  (:meth:`Forwarder.forward`): the executing replica's answer is the caller's;
  a request not taken within ``timeout`` seconds is withdrawn
  (:class:`~langchain_runtime.api.errors.ReplicaUnavailableError`, nothing added);
  one taken is waited for as long again;
* the executing replica takes the requests to its live runs and answers each with
  what adding the task there gave (:meth:`Forwarder.serve`), and answers those
  still pending when a run finishes with its finished error (:meth:`Forwarder.refuse`).

An answer is ``{"ok": true, "task_id": ...}`` or ``{"ok": false, "code", "message"}``
(the error body the executing replica would have sent).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from langchain_runtime.api.errors import ReplicaUnavailableError, error_from_body, status_for
from langchain_runtime.api.schemas import TaskAccepted, TaskSpec
from langchain_runtime.api.store import RunStore
from langchain_runtime.errors import (
    InvalidInputError,
    LangChainRuntimeError,
    RunAbortedError,
    RunFinishedError,
    StoreError,
)
from langchain_runtime.store import DurableRunStore, MailboxRequest, RunMailbox, StoredRun

__all__ = ["ENQUEUE", "Forwarder", "finished_error"]

logger = logging.getLogger(__name__)

#: The kind of a request that adds a task: ``{"task": TaskSpec JSON, "max_tasks":
#: the forwarding server's limit of tasks per run, or None}``.
ENQUEUE = "enqueue"
#: Seconds between the forwarding replica's checks that the run still executes.
LIVENESS_CHECK = 0.5
_UNFINISHED = ("pending", "running", "aborting")


def finished_error(run_id: str, state: str) -> LangChainRuntimeError:
    """The error of a change asked of a run that has ended in ``state``."""
    if state == "aborted":
        return RunAbortedError(f"run {run_id} was aborted")
    return RunFinishedError(f"run {run_id} has already finished ({state})")


def error_answer(exc: LangChainRuntimeError) -> dict[str, Any]:
    """A refused request's answer: what the HTTP error body would be."""
    return {"ok": False, "code": exc.code, "message": str(exc)}


def accepted(run_id: str, answer: Mapping[str, Any]) -> TaskAccepted:
    """The executing replica's answer: the task accepted, or its error raised."""
    if answer.get("ok"):
        return TaskAccepted(run_id=run_id, task_id=str(answer["task_id"]))
    code = str(answer.get("code") or "internal_error")
    message = str(answer.get("message") or "the executing replica refused the task")
    raise error_from_body(status_for(code), {"code": code, "message": message})


class Forwarder:
    """The mailbox side of a :class:`~._manager.RunManager` on a shared store.

    Args:
        mailbox: The shared store's mailbox.
        durable: The same store's durable runs (whether a run still executes).
        records: The same store's API records (how a run ended).
        timeout: Seconds a forwarded task waits to be taken.
        poll: Seconds between reads of the answer.
    """

    def __init__(
        self,
        mailbox: RunMailbox,
        durable: DurableRunStore,
        records: RunStore,
        *,
        timeout: float,
        poll: float = 0.05,
    ) -> None:
        self.mailbox = mailbox
        self.durable = durable
        self.records = records
        self.timeout = timeout
        self.poll = poll

    # -- the replica that was asked ------------------------------------------------------
    def forward(self, stored: StoredRun, spec: TaskSpec, max_tasks: int | None) -> TaskAccepted:
        """Add ``spec`` to the run ``stored`` (executing on another replica): its answer."""
        run_id = stored.header.run_id
        body = {"task": spec.model_dump(mode="json", exclude_unset=True), "max_tasks": max_tasks}
        request_id = self.mailbox.post_request(run_id, ENQUEUE, body)
        owner = stored.header.owner
        started = time.monotonic()
        deadline = started + self.timeout
        next_check = started + LIVENESS_CHECK
        taken = False  # the executing replica has it: only its answer is awaited now
        while True:
            answer = gone = None
            try:  # a blip of the database is waited out: the request stands
                answer = self.mailbox.collect_answer(request_id)
                if answer is None and time.monotonic() >= next_check:
                    next_check = time.monotonic() + LIVENESS_CHECK
                    gone = not self.durable.is_live(run_id)
            except StoreError:
                logger.warning("run %s: reading the answer to request %d failed; retrying",
                               run_id, request_id, exc_info=True)  # fmt: skip
            if answer is not None:
                return accepted(run_id, answer)
            now = time.monotonic()
            if not taken and (gone or now >= deadline):
                if self.mailbox.withdraw_request(request_id):
                    if gone:
                        raise self._not_live(run_id, spec)
                    raise ReplicaUnavailableError(
                        f"run {run_id} executes on replica {owner}, which did not answer "
                        f"within {self.timeout:g} s; task {spec.id!r} was not added"
                    )
                taken = True
                deadline = max(deadline, now + self.timeout)
            elif taken and now >= deadline:
                return self._unanswered(stored, spec)
            time.sleep(self.poll)

    def _not_live(self, run_id: str, spec: TaskSpec) -> LangChainRuntimeError:
        """Why a task was not added to a run that stopped executing meanwhile."""
        record = self.records.load(run_id)
        if record is not None and record.state not in _UNFINISHED:
            return finished_error(run_id, record.state)
        stored = self.durable.load_run(run_id)  # ended, its record not saved yet?
        if stored is not None and stored.state not in ("running", "interrupted"):
            return finished_error(run_id, stored.state)
        return RunFinishedError(
            f"run {run_id} was interrupted (its replica stopped); task {spec.id!r} was not added"
        )

    def _unanswered(self, before: StoredRun, spec: TaskSpec) -> TaskAccepted:
        """A request the executing replica took and never answered (it stopped while
        adding the task): the stored run tells whether the task was added."""
        run_id = before.header.run_id
        after = self.durable.load_run(run_id)
        added = after is not None and any(
            item.get("task_id") == spec.id for item in after.header.enqueued
        )
        if added and spec.id not in before.header.fingerprint:
            return TaskAccepted(run_id=run_id, task_id=spec.id)
        raise ReplicaUnavailableError(
            f"run {run_id} executes on replica {before.header.owner}, which took task "
            f"{spec.id!r} but did not answer within {2 * self.timeout:g} s; the stored run "
            "does not have it"
        )

    # -- the replica that executes the run -----------------------------------------------
    def serve(
        self, run_ids: Sequence[str], add: Callable[[str, TaskSpec, int | None], TaskAccepted]
    ) -> int:
        """Take the requests to ``run_ids`` and answer each with what ``add(run_id,
        spec, max_tasks)`` gave; how many were answered."""
        if not run_ids:
            return 0
        taken = self.mailbox.take_requests(run_ids)
        for request in taken:
            self._answer(request, add)
        return len(taken)

    def _answer(
        self, request: MailboxRequest, add: Callable[[str, TaskSpec, int | None], TaskAccepted]
    ) -> None:
        run_id = request.run_id
        answer: dict[str, Any]
        try:
            if request.kind != ENQUEUE:
                raise InvalidInputError(f"unknown request {request.kind!r} to run {run_id}")
            spec = TaskSpec.model_validate(request.body.get("task"))
            max_tasks = request.body.get("max_tasks")
            done = add(run_id, spec, max_tasks if isinstance(max_tasks, int) else None)
            answer = {"ok": True, "task_id": done.task_id}
            logger.info("run %s: task %s added on another replica's request", run_id, spec.id)
        except LangChainRuntimeError as exc:
            answer = error_answer(exc)
        except ValueError as exc:  # a body that is not a task (pydantic's ValidationError)
            answer = error_answer(InvalidInputError(f"request to run {run_id}: {exc}"))
        except Exception:
            logger.exception("run %s: request %d failed", run_id, request.id)
            answer = {"ok": False, "code": "internal_error", "message": "internal error"}
        try:
            self.mailbox.answer_request(request.id, answer)
        except Exception:  # its poster times out and says so
            logger.exception("run %s: request %d could not be answered", run_id, request.id)

    def refuse(self, run_id: str, error: LangChainRuntimeError) -> None:
        """Answer the requests still pending for a run that has ended with ``error``."""
        try:
            for request in self.mailbox.take_requests([run_id]):
                self.mailbox.answer_request(request.id, error_answer(error))
        except Exception:  # their posters find the run ended on their own
            logger.exception("run %s: pending requests could not be answered", run_id)
