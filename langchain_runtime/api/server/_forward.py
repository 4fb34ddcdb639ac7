"""Tasks added through one replica to a run executing on another, through the mailbox.

Both sides of ``POST /api/v1/runs/{id}/tasks`` on a shared store
(:class:`~langchain_runtime.store.RunMailbox`, see :mod:`._replicas`):

* the replica that was asked posts the request and waits for the answer
  (:meth:`Forwarder.forward`): the executing replica's answer is the caller's. The
  whole wait has one deadline (``timeout`` seconds), which is also the request's
  expiry in the store (the database's clock: the executing replica never takes it
  after that). A request not taken by the deadline is withdrawn
  (:class:`~langchain_runtime.api.errors.ReplicaUnavailableError`, 503: nothing was
  added, a retry is safe); one taken but not answered by the deadline plus
  :data:`GRACE` is given up
  (:class:`~langchain_runtime.api.errors.EnqueueUnknownError`, 504: it may have been
  added). At most ``max_waiting`` forwards wait at once (more are refused with 503),
  so the server's request threads are never all waiting on another replica;
* the executing replica takes the requests to its live runs (those not begun yet
  included: the task joins the run when it begins) and answers each with what
  adding the task there gave (:meth:`Forwarder.serve`), and answers those still
  pending when a run finishes with its finished error (:meth:`Forwarder.refuse`).

An answer is ``{"ok": true, "task_id": ...}`` or ``{"ok": false, "code", "message"}``
(the error body the executing replica would have sent).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from langchain_runtime.api.errors import (
    EnqueueUnknownError,
    ReplicaUnavailableError,
    error_from_body,
    status_for,
)
from langchain_runtime.api.schemas import TaskAccepted, TaskSpec
from langchain_runtime.api.server._live import UNFINISHED, finished_error
from langchain_runtime.api.store import RunStore
from langchain_runtime.errors import (
    InvalidInputError,
    LangChainRuntimeError,
    RunFinishedError,
    StoreError,
)
from langchain_runtime.store import DurableRunStore, MailboxRequest, RunMailbox

__all__ = ["ENQUEUE", "GRACE", "MAX_WAITING", "Forwarder"]

logger = logging.getLogger(__name__)

#: The kind of a request that adds a task: ``{"task": TaskSpec JSON, "max_tasks":
#: the forwarding server's limit of tasks per run, or None}``.
ENQUEUE = "enqueue"
#: Seconds between the forwarding replica's checks that the run still executes.
LIVENESS_CHECK = 0.5
#: Seconds past the deadline the answer to a request the executing replica took is
#: waited for (it was adding the task when the deadline came).
GRACE = 1.0
#: Forwards one replica lets wait at once (each holds a request thread).
MAX_WAITING = 32


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
        timeout: Seconds a forwarded task may take in all (its deadline); a taken
            one's answer is waited for :data:`GRACE` seconds longer.
        poll: Seconds between reads of the answer.
        max_waiting: Forwards that may wait at once; more are refused (503).
    """

    def __init__(
        self,
        mailbox: RunMailbox,
        durable: DurableRunStore,
        records: RunStore,
        *,
        timeout: float,
        poll: float = 0.15,
        max_waiting: int = MAX_WAITING,
    ) -> None:
        if max_waiting < 1:
            raise ValueError(f"max_waiting must be >= 1, got {max_waiting!r}")
        self.mailbox = mailbox
        self.durable = durable
        self.records = records
        self.timeout = timeout
        self.poll = poll
        self.max_waiting = max_waiting
        self._slots = threading.BoundedSemaphore(max_waiting)

    # -- the replica that was asked ------------------------------------------------------
    def forward(
        self, run_id: str, owner: str | None, spec: TaskSpec, max_tasks: int | None
    ) -> TaskAccepted:
        """Add ``spec`` to the run ``run_id``, executing on the replica ``owner`` (None:
        it has not begun executing there yet): that replica's answer.

        Raises:
            ReplicaUnavailableError: Not taken by the deadline, or too many forwards
                wait already (503); the task was not added.
            EnqueueUnknownError: Taken, not answered by the deadline (504); the task
                may have been added.
        """
        if not self._slots.acquire(blocking=False):
            raise ReplicaUnavailableError(
                f"too many tasks waiting to be forwarded ({self.max_waiting} on this "
                f"replica); task {spec.id!r} was not added to run {run_id}: retry"
            )
        try:
            return self._forward(run_id, owner, spec, max_tasks)
        finally:
            self._slots.release()

    def _forward(
        self, run_id: str, owner: str | None, spec: TaskSpec, max_tasks: int | None
    ) -> TaskAccepted:
        timeout = self.timeout
        deadline = time.monotonic() + timeout  # before the post: never after its expiry
        body = {"task": spec.model_dump(mode="json", exclude_unset=True), "max_tasks": max_tasks}
        request_id = self.mailbox.post_request(run_id, ENQUEUE, body, expires_in=timeout)
        where = f"replica {owner}" if owner else "the replica it was submitted to"
        next_check = time.monotonic() + LIVENESS_CHECK
        gone = False  # the run stopped executing: it will not take the request
        while not gone and time.monotonic() < deadline:
            try:  # a blip of the database is waited out: the request stands
                answer = self.mailbox.collect_answer(request_id)
                if answer is not None:
                    return accepted(run_id, answer)
                if time.monotonic() >= next_check:
                    next_check = time.monotonic() + LIVENESS_CHECK
                    gone = self._gone(run_id)
            except StoreError:
                logger.warning("run %s: reading the answer to request %d failed; retrying",
                               run_id, request_id, exc_info=True)  # fmt: skip
            if not gone:
                time.sleep(max(0.0, min(self.poll, deadline - time.monotonic())))
        limit = deadline + GRACE
        withdrawn = self._withdraw(run_id, request_id, limit)
        if withdrawn:
            if gone:
                raise self._not_live(run_id, spec)
            raise ReplicaUnavailableError(
                f"run {run_id} executes on {where}, which did not take task {spec.id!r} "
                f"within {timeout:g} s; the task was not added"
            )
        if withdrawn is not None:  # taken: its answer is coming
            answer = self._await(run_id, request_id, limit)
            if answer is not None:
                return accepted(run_id, answer)
        try:  # given up: the row goes (it may have been answered just now)
            answer = self.mailbox.drop_request(request_id)
        except StoreError:  # it expired: purged later
            logger.warning("run %s: request %d could not be removed", run_id, request_id,
                           exc_info=True)  # fmt: skip
            answer = None
        if answer is not None:
            return accepted(run_id, answer)
        check = f"GET /api/v1/runs/{run_id} shows whether it was added"
        if withdrawn is None:
            raise EnqueueUnknownError(
                f"run {run_id} executes on {where}, which did not answer within "
                f"{timeout:g} s, and the request could not be withdrawn (the database did "
                f"not answer): task {spec.id!r} may have been added; {check}"
            )
        raise EnqueueUnknownError(
            f"{where} took task {spec.id!r} but did not answer within {timeout:g} s; "
            f"it may have been added to run {run_id}: {check}"
        )

    def _withdraw(self, run_id: str, request_id: int, limit: float) -> bool | None:
        """Withdraw a request: True (it was pending: never applied), False (taken),
        None (the database did not answer until ``limit``)."""
        while True:
            try:
                return self.mailbox.withdraw_request(request_id)
            except StoreError:
                logger.warning("run %s: withdrawing request %d failed; retrying",
                               run_id, request_id, exc_info=True)  # fmt: skip
            if time.monotonic() + self.poll >= limit:
                return None
            time.sleep(self.poll)

    def _await(self, run_id: str, request_id: int, limit: float) -> dict[str, Any] | None:
        """The answer to a taken request, read until ``limit``; None if none came."""
        while True:
            try:
                answer = self.mailbox.collect_answer(request_id)
                if answer is not None:
                    return answer
            except StoreError:
                logger.warning("run %s: reading the answer to request %d failed; retrying",
                               run_id, request_id, exc_info=True)  # fmt: skip
            left = limit - time.monotonic()
            if left <= 0:
                return None
            time.sleep(min(self.poll, left))

    def _gone(self, run_id: str) -> bool:
        """Whether the run stopped executing (one not begun yet still executes: the
        replica it was submitted to has it)."""
        if self.durable.is_live(run_id):
            return False
        record = self.records.load(run_id)
        if record is None or record.state not in UNFINISHED:
            return True
        return self.durable.load_run(run_id) is not None

    def _not_live(self, run_id: str, spec: TaskSpec) -> LangChainRuntimeError:
        """Why a task was not added to a run that stopped executing meanwhile."""
        record = self.records.load(run_id)
        if record is not None and record.state not in UNFINISHED:
            return finished_error(run_id, record.state)
        stored = self.durable.load_run(run_id)  # ended, its record not saved yet?
        if stored is not None and stored.state not in ("running", "interrupted"):
            return finished_error(run_id, stored.state)
        return RunFinishedError(
            f"run {run_id} was interrupted (its replica stopped); task {spec.id!r} was not added"
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
