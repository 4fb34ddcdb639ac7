"""Steering runs (abort, add a task, forward to the executing replica): the
:class:`RunSteering` part of ``RunManager``."""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import TYPE_CHECKING

from langchain_runtime.api.errors import PayloadTooLargeError
from langchain_runtime.api.schemas import RunAccepted, RunRequest, TaskAccepted, TaskSpec
from langchain_runtime.api.server._build import build_task
from langchain_runtime.api.server._forward import Forwarder
from langchain_runtime.api.server._keys import Principal
from langchain_runtime.api.server._live import (
    UNFINISHED,
    Live,
    client_request,
    finished_error,
    not_executing,
    now,
    refused,
)
from langchain_runtime.api.server._replicas import ABORT_KEY
from langchain_runtime.api.store import RunRecord, RunStore
from langchain_runtime.config import RuntimeConfig
from langchain_runtime.errors import RunAbortedError
from langchain_runtime.store import StoredRun

__all__ = ["RunSteering"]


class RunSteering:
    """What ``POST .../abort`` and ``POST .../tasks`` do, here or, on a shared store,
    through the replica that executes the run."""

    config: RuntimeConfig
    store: RunStore
    _lock: threading.Lock
    _live: dict[str, Live]
    _shared: bool
    _forwarder: Forwarder | None

    if TYPE_CHECKING:

        def _visible_live(self, run_id: str, principal: Principal | None) -> Live | None: ...

        def _load(self, run_id: str, principal: Principal | None = None) -> RunRecord: ...

        def _get_live(self, run_id: str) -> Live | None: ...

        def _elsewhere(self, record: RunRecord) -> StoredRun | None: ...

        def _default_model(self, request: RunRequest) -> str | None: ...

    def abort(self, run_id: str, principal: Principal | None = None) -> RunAccepted:
        """Ask a live run to stop (fire-and-forget): state ``aborting``."""
        live = self._visible_live(run_id, principal)
        if live is not None:
            if live.aborting or live.handle.abort():
                live.aborting = True
                return RunAccepted(run_id=run_id, state="aborting")
            raise finished_error(run_id, live.handle.status().value)
        record = self._load(run_id, principal)
        stored = self._elsewhere(record)
        if (stored is not None and stored.live) or self._not_begun(record, stored):
            # the executing replica polls its runs' records for this (one not begun
            # yet too: it aborts as it begins)
            asked = dict(record.request)
            asked[ABORT_KEY] = True
            self.store.save(replace(record, request=asked, updated_at=now()))
            return RunAccepted(run_id=run_id, state="aborting")
        raise not_executing(record, stored)

    def enqueue(
        self,
        run_id: str,
        spec: TaskSpec,
        principal: Principal | None = None,
        *,
        max_tasks: int | None = None,
    ) -> TaskAccepted:
        """Add a task to a live run (validated like the tasks of a request).

        A run executing on another replica (a shared store) gets the task through
        that replica: the request is posted to the store's mailbox and the answer is
        that replica's own (accepted, or the error it refused the task with). With
        ``max_tasks``, a run that has that many tasks already is refused (413).

        Raises:
            ReplicaUnavailableError: The executing replica did not take the task
                within ``forward_timeout`` seconds, or too many tasks wait to be
                forwarded already (503); the task was not added.
            EnqueueUnknownError: The executing replica took the task but did not
                answer in time (504); it may have been added.
        """
        live = self._visible_live(run_id, principal)
        if live is not None:
            return self._enqueue_live(live, spec, max_tasks)
        record = self._load(run_id, principal)
        stored = self._elsewhere(record)
        if (stored is not None and stored.live) or self._not_begun(record, stored):
            return self._forward(record, stored, spec, max_tasks)
        raise not_executing(record, stored)

    def _enqueue_live(self, live: Live, spec: TaskSpec, max_tasks: int | None) -> TaskAccepted:
        run_id = live.run_id
        if live.aborting:
            raise RunAbortedError(f"run {run_id} is being aborted; cannot add task {spec.id!r}")
        if max_tasks is not None:
            count = len(live.handle.snapshot().tasks)
            if count >= max_tasks:
                raise PayloadTooLargeError(
                    f"run {run_id} has {count} tasks, this server's limit per run "
                    f"(serve --limit max_tasks=N); cannot add task {spec.id!r}"
                )
        task = build_task(self.config, spec, live.default_model, "task")
        live.handle.enqueue(task, spec.model_dump(mode="json", exclude_unset=True))
        return TaskAccepted(run_id=run_id, task_id=task.id)

    # -- forwarding to the replica that executes the run --------------------------------
    def _not_begun(self, record: RunRecord, stored: StoredRun | None) -> bool:
        """Whether ``record`` is a run just submitted to another replica (on a shared
        store), which has not begun its durable run yet: that replica has it."""
        return self._shared and stored is None and record.state in UNFINISHED

    def _forward(
        self, record: RunRecord, stored: StoredRun | None, spec: TaskSpec, max_tasks: int | None
    ) -> TaskAccepted:
        """Add a task to a run executing on another replica (``stored``: its durable
        run, None if not begun yet), through the mailbox."""
        run_id = record.run_id
        owner = stored.header.owner if stored is not None else None
        if self._forwarder is None:
            raise refused(
                f"run {run_id} executes on another replica ({owner or 'not begun yet'}); "
                "tasks can be added only there",
                "run_live",
            )
        if record.request.get(ABORT_KEY):
            raise RunAbortedError(f"run {run_id} is being aborted; cannot add task {spec.id!r}")
        # what can be refused here is refused as the executing replica would
        request = RunRequest.model_validate(client_request(record.request))
        build_task(self.config, spec, self._default_model(request), "task")
        return self._forwarder.forward(run_id, owner, spec, max_tasks)

    def serve_requests(self) -> int:
        """Answer the requests other replicas forwarded to this replica's live runs
        (one read of the store); how many were answered."""
        if self._forwarder is None:
            return 0
        with self._lock:
            run_ids = list(self._live)
        return self._forwarder.serve(run_ids, self._add_forwarded)

    def _add_forwarded(self, run_id: str, spec: TaskSpec, max_tasks: int | None) -> TaskAccepted:
        live = self._get_live(run_id)
        if live is None:  # it ended after the requests were taken
            record = self.store.load(run_id)
            raise finished_error(run_id, record.state if record is not None else "failed")
        return self._enqueue_live(live, spec, max_tasks)
