"""``RunManager``: the server's runs, live and stored (no web framework in here).

Each accepted run executes in the background through ``Orchestrator.start`` and is
watched by a thread of its own, which, when it ends, writes the final status and
the rest of its events in one transaction. Only after that write does the API
report the run finished: until then a run that has ended reads as ``running`` (or
``aborting``), so a finished state is never shown for a result that could still
be lost.

On a durable store (:class:`~langchain_runtime.store.DurableRunStore`, the SQLite
file) the run itself writes each task's commit, before any dependent starts, so
the watcher writes nothing while the run goes (a live run costs the server what
its tasks change, not a rewrite of the whole run), a crash loses only the calls in
flight, and a run can be resumed (:meth:`RunManager.resume`). On a store that
keeps no durable runs (``MemoryRunStore``) the watcher saves the run's status every
``checkpoint_interval`` seconds instead.

This module starts, watches, resumes and closes runs; reading them is
:class:`~._reading.RunReading`, steering them (abort, add a task, forward either to
the executing replica) :class:`~._steering.RunSteering`, and what they share is in
:mod:`._live`.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from langchain_core.runnables import RunnableConfig

from langchain_runtime.api.errors import (
    ApiError,
    RunExistsError,
    TooManyRunsError,
)
from langchain_runtime.api.schemas import (
    TERMINAL_STATES,
    ApiRunState,
    ResumeRequest,
    RunAccepted,
    RunRequest,
    RunStatus,
    TaskSpec,
)
from langchain_runtime.api.server._build import build_orchestrator, build_task
from langchain_runtime.api.server._charges import DeadRunCharges
from langchain_runtime.api.server._durable import interrupted_record, resume_budget
from langchain_runtime.api.server._forward import Forwarder
from langchain_runtime.api.server._keys import Principal
from langchain_runtime.api.server._live import (
    INTERRUPTED,
    OWNER_KEY,
    RESUMABLE,
    SCOPES_KEY,
    SHUT_DOWN,
    UNFINISHED,
    Live,
    client_request,
    encode_event,
    finished_error,
    handle_snapshot_or_empty,
    now,
    refused,
)
from langchain_runtime.api.server._metrics import Metrics
from langchain_runtime.api.server._reading import RunReading
from langchain_runtime.api.server._replicas import ABORT_KEY, Sweeper, is_shared
from langchain_runtime.api.server._steering import RunSteering
from langchain_runtime.api.server._tenancy import scoped
from langchain_runtime.api.store import RunRecord, RunStore, interrupt_status
from langchain_runtime.config import RuntimeConfig
from langchain_runtime.domain import RunResult, RunState, TaskError
from langchain_runtime.errors import (
    InvalidInputError,
    ResumeError,
)
from langchain_runtime.orchestration import Orchestrator, RunHandle
from langchain_runtime.orchestration._accounting import dead_holders, lease_holder
from langchain_runtime.store import DurableRunStore, RunMailbox

if TYPE_CHECKING:
    from langchain_runtime.cost.ledger import BudgetLedger

__all__ = ["RunManager"]

logger = logging.getLogger(__name__)


class ShuttingDownError(ApiError):
    code = "shutting_down"
    status_code = 503


class RunManager(RunReading, RunSteering):
    """Starts, tracks, persists and steers the server's runs.

    Args:
        config: Where models, policies and workflows come from.
        store: Where runs are kept. Unfinished runs found there are marked
            ``failed`` at once (they were in flight when a server stopped), with
            the error code ``interrupted``; on a durable store they keep their
            committed tasks and can be resumed.
        workflows: Prebuilt orchestrators, by name, that requests may run.
        max_concurrent_runs: Most runs executing at once; more are refused (429).
        checkpoint_interval: Seconds between saves of a live run's progress on a
            store that keeps no durable runs (a durable run saves its own commits).
        own_store: Close the store with the manager.
        ledger: The shared budget ledger the runs' scopes reserve in (an API key's
            scopes, a workflow's ``scopes:``); None: runs have no shared scopes.
        sweep_interval: On a store replicas share (PostgreSQL), seconds between
            sweeps for runs of stopped replicas (see :mod:`._replicas`).
        forward_timeout: On a shared store, the deadline (seconds) of a task added
            through this replica to a run executing on another: not taken by then,
            it is withdrawn (``replica_unavailable``, 503: not added); taken, its
            answer is waited for a second longer (then ``enqueue_unknown``, 504: it
            may have been added). Keep it below the client's timeout (10 s).
        request_poll_interval: On a shared store, seconds between this replica's
            reads of the requests (tasks to add) other replicas forwarded to its runs.

    Every method taking a ``principal`` (the API key of the request; None in the
    single-user mode) acts only on that key's runs: another key's run is
    :class:`RunNotFoundError`, as if it did not exist; an admin key acts on all.
    """

    def __init__(
        self,
        config: RuntimeConfig,
        store: RunStore,
        *,
        workflows: Mapping[str, Orchestrator] | None = None,
        max_concurrent_runs: int = 16,
        checkpoint_interval: float = 1.0,
        own_store: bool = False,
        ledger: BudgetLedger | None = None,
        sweep_interval: float = 5.0,
        forward_timeout: float = 5.0,
        request_poll_interval: float = 0.1,
    ) -> None:
        if max_concurrent_runs < 1:
            raise ValueError(f"max_concurrent_runs must be >= 1, got {max_concurrent_runs}")
        if forward_timeout <= 0:
            raise ValueError(f"forward_timeout must be > 0 seconds, got {forward_timeout!r}")
        if request_poll_interval <= 0:
            raise ValueError(
                f"request_poll_interval must be > 0 seconds, got {request_poll_interval!r}"
            )
        self.config = config
        self.store = store
        self.workflows = dict(workflows or {})
        self.max_concurrent_runs = max_concurrent_runs
        self.checkpoint_interval = checkpoint_interval
        self.metrics = Metrics()
        self.ledger = ledger
        self._own_store = own_store
        self._lock = threading.Lock()
        self._live: dict[str, Live] = {}
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._durable: DurableRunStore | None = (
            store if isinstance(store, DurableRunStore) else None
        )
        self._sweeper: Sweeper | None = None
        self._requests: Sweeper | None = None
        # the calls dead runs had in flight are charged at their hold in the ledger
        self._charges = DeadRunCharges(ledger, self._dead_holders, self.metrics.dead_run_charges)
        self._shared = self._durable is not None and is_shared(store)
        self._forwarder: Forwarder | None = None
        if self._shared and self._durable is not None and isinstance(store, RunMailbox):
            self._forwarder = Forwarder(store, self._durable, store, timeout=forward_timeout)
        if self._shared:  # other replicas' runs are not ours to fail: only the dead ones
            self.sweep()
            self._sweeper = Sweeper(self.sweep, sweep_interval).start()
            if self._forwarder is not None:
                self._requests = Sweeper(
                    self.serve_requests,
                    request_poll_interval,
                    name="lcr-requests",
                    what="reading the requests forwarded to this replica's runs",
                    setting="request_poll_interval",
                ).start()
            return
        interrupted = store.mark_interrupted(INTERRUPTED)
        resumable = self._keep_committed(interrupted)
        self._charges.charge(interrupted)
        if self._charges.pending:  # the ledger did not answer: try again until it does
            self._sweeper = Sweeper(self._charges.charge, sweep_interval).start()
        if interrupted:
            logger.warning(
                "%d run(s) were in flight when the server stopped; marked failed "
                "(%d resumable): %s",
                len(interrupted),
                len(resumable),
                ", ".join(interrupted[:20]),
            )

    def _keep_committed(self, run_ids: list[str]) -> list[str]:
        """Give interrupted runs their committed tasks back from the durable store."""
        if self._durable is None:
            return []
        kept = []
        interrupt = getattr(self._durable, "interrupt_run", None)
        for run_id in run_ids:
            try:
                if callable(interrupt):  # this server's own run: no one else executes it
                    interrupt(run_id)
                stored = self._durable.load_run(run_id)
                record = self.store.load(run_id)
                if stored is None or record is None:
                    continue  # it never started executing: nothing was committed
                reason = RESUMABLE.format(run_id=run_id)
                self.store.save(interrupted_record(record, stored, reason))
            except Exception:  # one unreadable run must not keep the server from starting
                logger.exception("run %s: its committed tasks could not be read back", run_id)
                continue
            kept.append(run_id)
        return kept

    def sweep(self) -> list[str]:
        """Mark the runs of stopped replicas interrupted (resumable); their ids.

        The calls they had in flight are charged at their hold in the ledger (those the
        ledger could not take are tried again at the next sweep).
        """
        assert self._durable is not None
        stale: list[str] = self.store.mark_interrupted_stale()  # type: ignore[attr-defined]
        for run_id in stale:
            try:
                record = self.store.load(run_id)
                stored = self._durable.load_run(run_id)
                if record is None or stored is None or record.state not in UNFINISHED:
                    continue
                reason = RESUMABLE.format(run_id=run_id)
                self.store.save(interrupted_record(record, stored, reason))
            except Exception:
                logger.exception("run %s: could not be marked interrupted", run_id)
        if stale:
            logger.warning("%d run(s) of stopped replicas marked interrupted: %s",
                           len(stale), ", ".join(stale[:20]))  # fmt: skip
        self._charges.charge(stale)
        if self._forwarder is not None:
            try:  # answers their posters never collected (a replica that stopped)
                self._forwarder.mailbox.purge_requests()
            except Exception:
                logger.exception("purging old forwarded requests failed")
        return stale

    def _dead_holders(self, run_id: str) -> list[str]:
        """The ledger holders of a run's attempts no process runs any more (a resume,
        here or elsewhere, may already run its latest: that one is left alone)."""
        live_here = self._get_live(run_id) is not None
        stored = self._durable.load_run(run_id) if self._durable is not None else None
        if stored is None:
            return [] if live_here else [lease_holder(run_id, 0)]
        return dead_holders(run_id, resumes=stored.resumes, live=stored.live or live_here)

    def _elsewhere(self, record: RunRecord) -> Any:
        """The stored durable run of an unfinished run not executing here, or None."""
        if not self._shared or self._durable is None or record.state not in UNFINISHED:
            return None
        return self._durable.load_run(record.run_id)

    # -- submission -----------------------------------------------------------------
    def submit(self, request: RunRequest, principal: Principal | None = None) -> RunAccepted:
        """Validate and start a run; the answer of ``POST /api/v1/runs``.

        The run's calls reserve in the key's scopes plus the workflow's own (in the
        server's ledger); a scope with nothing left refuses the run here (402).
        """
        orch = build_orchestrator(self.config, self.workflows, request)
        key_scopes = principal.scopes if principal is not None else ()
        orch = self._scoped(orch, key_scopes)
        missing = sorted(orch.required_inputs - set(request.input))
        if missing:
            raise InvalidInputError(f"input: missing key(s) the prompts use: {', '.join(missing)}")
        run_id = request.id or str(uuid.uuid4())
        default_model = self._default_model(request)
        stored_request = request.model_dump(mode="json", exclude_unset=True)
        if principal is not None:
            stored_request[OWNER_KEY] = principal.name
        if key_scopes:
            stored_request[SCOPES_KEY] = list(key_scopes)
        record = RunRecord(
            run_id=run_id,
            state="pending",
            workflow=request.workflow,
            request=stored_request,
        )
        with self._lock:
            if self._closed:
                raise ShuttingDownError("the server is shutting down")
            if len(self._live) >= self.max_concurrent_runs:
                raise TooManyRunsError(
                    f"{len(self._live)} runs are executing, the most this server allows; "
                    "retry when one has finished"
                )
            if run_id in self._live:
                raise RunExistsError(f"a run with id {run_id!r} already exists")
            self.store.create(record)  # a taken id is 409, whoever owns it (ids are the
            # client's choice: knowing one is not a leak of another key's run)
            try:
                config: RunnableConfig = {
                    "run_name": request.workflow or "run",
                    "metadata": {"api_run_id": run_id},
                }
                if self._durable is not None:  # kept under the API's run id
                    orch = orch.model_copy(update={"store": self._durable})
                    handle = orch.start(request.input, config, run_id=run_id)
                else:
                    handle = orch.start(request.input, config)
            except Exception as exc:
                failed = replace(record, state="failed", updated_at=now())
                self.store.save(failed)
                raise exc
            live, thread = self._watch_in_background(run_id, handle, record, default_model)
        self.metrics.run_submitted()
        thread.start()
        logger.info("run %s accepted (%s)", run_id, request.workflow or "ad-hoc tasks")
        return RunAccepted(run_id=run_id, state=self._state(live, handle.status().value))

    @property
    def forward_timeout(self) -> float | None:
        """The deadline (seconds) of a task forwarded to another replica (None: the
        store is not shared)."""
        return self._forwarder.timeout if self._forwarder is not None else None

    @forward_timeout.setter
    def forward_timeout(self, seconds: float) -> None:
        if seconds <= 0:
            raise ValueError(f"forward_timeout must be > 0 seconds, got {seconds!r}")
        if self._forwarder is not None:
            self._forwarder.timeout = seconds

    def _default_model(self, request: RunRequest) -> str | None:
        """The model of tasks added to the run: the request's, else its workflow's."""
        if request.model is not None:
            return request.model
        name = request.workflow
        if name is None or name in self.workflows:
            return None
        spec = self.config.workflows.get(name)
        return spec.model if spec is not None else None

    def _scoped(self, orch: Orchestrator, key_scopes: tuple[str, ...]) -> Orchestrator:
        return scoped(orch, key_scopes, self.ledger)

    def _watch_in_background(
        self, run_id: str, handle: RunHandle, record: RunRecord, default_model: str | None
    ) -> tuple[Live, threading.Thread]:
        """Register a live run and its (not yet started) watcher; the caller holds the lock."""
        live = Live(run_id, handle, record, default_model, time.monotonic())
        self._live[run_id] = live
        thread = threading.Thread(
            target=self._watch, args=(live,), name=f"lcr-watch-{run_id[:8]}", daemon=True
        )
        self._threads = [t for t in self._threads if t.is_alive()]
        self._threads.append(thread)
        return live, thread

    def resume(
        self,
        run_id: str,
        request: ResumeRequest | None = None,
        principal: Principal | None = None,
    ) -> RunAccepted:
        """Resume a stored run; the answer of ``POST /api/v1/runs/{id}/resume``.

        Its completed tasks are restored (and not paid again), every other task runs;
        tasks that were added to the live run are rebuilt from their stored specs.

        Raises:
            RunNotFoundError: No such run (404).
            ResumeError: The run is live (``run_live``, 409); the store keeps no
                durable runs, the run has no durable record, or its registered
                workflow changed (``resume_refused``, 422, naming the difference).
            TooManyRunsError: The server runs as many runs as it allows (429).
        """
        record = self._load(run_id, principal)
        if self._durable is None:
            raise refused(
                "this server's store keeps no durable runs; start the server with a store "
                "file to resume runs",
                "resume_refused",
            )
        if self._get_live(run_id) is not None:
            raise refused(f"run {run_id} is live on this server", "run_live")
        stored = self._durable.load_run(run_id)
        if stored is None:
            raise refused(f"run {run_id} has no durable record to resume", "resume_refused")
        if stored.live:
            raise refused(f"run {run_id} is live (executed by {stored.header.owner})", "run_live")
        body = RunRequest.model_validate(client_request(record.request))
        orch = build_orchestrator(self.config, self.workflows, body)
        # the scopes of the key that submitted it (an admin resuming pays from them too)
        key_scopes = tuple(record.request.get(SCOPES_KEY) or ())
        orch = self._scoped(orch, key_scopes)
        orch = orch.model_copy(update={"store": self._durable})
        default_model = self._default_model(body)
        tasks = [
            build_task(self.config, TaskSpec.model_validate(item["spec"]), default_model, "task")
            for item in stored.header.enqueued
            if item.get("spec") is not None
        ]
        budget = resume_budget(stored.header.policy, request.budget if request else None)
        with self._lock:
            if self._closed:
                raise ShuttingDownError("the server is shutting down")
            if run_id in self._live:
                raise refused(f"run {run_id} is live on this server", "run_live")
            if len(self._live) >= self.max_concurrent_runs:
                raise TooManyRunsError(
                    f"{len(self._live)} runs are executing, the most this server allows; "
                    "retry when one has finished"
                )
            try:
                handle = orch.start_resume(
                    run_id,
                    budget=budget,
                    tasks=tasks,
                    config={
                        "run_name": body.workflow or "run",
                        "metadata": {"api_run_id": run_id, "resumed": True},
                    },
                )
            except ResumeError as exc:
                exc.code = "resume_refused"  # the graph differs (live was checked above)
                raise
            request_json = {k: v for k, v in record.request.items() if k != ABORT_KEY}
            running = replace(record, state="running", updated_at=now(), request=request_json)
            self.store.save(running)
            live, thread = self._watch_in_background(run_id, handle, running, default_model)
        self.metrics.run_submitted()
        thread.start()
        logger.info("run %s resumed (%d task(s) kept)", run_id, len(stored.tasks))
        return RunAccepted(run_id=run_id, state=self._state(live, handle.status().value))

    # -- the background side ----------------------------------------------------------
    @staticmethod
    def _state(live: Live, state: str) -> ApiRunState:
        """The API state of a live run: a terminal state is not shown before it is saved."""
        if live.aborting:
            return "aborting"
        if state in TERMINAL_STATES:
            return "running"
        return "pending" if state == "pending" else "running"

    def _live_status(self, live: Live, result: RunResult, state: ApiRunState) -> RunStatus:
        return RunStatus.from_result(
            result,
            run_id=live.run_id,
            state=state,
            workflow=live.record.workflow,
            created_at=live.record.created_at,
            updated_at=now(),
        )

    def _save(self, live: Live, status: RunStatus, result: RunResult) -> None:
        # a durable run stored its events with its commits (the last one included)
        events = (
            []
            if self._durable is not None and result.events
            else [encode_event(e, live.run_id) for e in result.events if e.seq > live.saved_seq]
        )
        record = replace(
            live.record,
            state=status.state,
            updated_at=status.updated_at or now(),
            status=status.model_dump(mode="json"),
        )
        self.store.save(record, events)
        if events:
            live.saved_seq = events[-1]["seq"]

    def _watch(self, live: Live) -> None:
        handle = live.handle
        result: RunResult | None = None
        failure: BaseException | None = None
        while True:
            if handle.done():
                try:
                    result = handle.result(timeout=0)
                except BaseException as exc:  # the run itself failed
                    failure = exc
                break
            try:
                result = handle.result(timeout=self.checkpoint_interval)
                break
            except BaseException:  # "not yet"; or it just ended: the top of the loop tells
                if handle.done():
                    continue
            if self._durable is not None:
                if self._shared and not live.aborting:
                    self._abort_if_asked(live)
                continue  # the run writes its own commits
            try:
                snap = handle.snapshot()
                self._save(live, self._live_status(live, snap, self._state(live, "running")), snap)
            except Exception:
                logger.exception("checkpoint of run %s failed", live.run_id)
        self._finalize(live, result, failure)

    def _abort_if_asked(self, live: Live) -> None:
        """Abort a live run another replica asked to abort (in its stored record)."""
        try:
            record = self.store.load(live.run_id)
        except Exception:
            logger.exception("run %s: its record could not be read", live.run_id)
            return
        if record is not None and record.request.get(ABORT_KEY):
            logger.info("run %s: aborted on another replica's request", live.run_id)
            live.aborting = True
            live.handle.abort()

    def _finalize(
        self, live: Live, result: RunResult | None, failure: BaseException | None
    ) -> None:
        if result is None:
            logger.error("run %s crashed", live.run_id, exc_info=failure)
            result = handle_snapshot_or_empty(live)
            result = result.model_copy(
                update={
                    "state": RunState.FAILED,
                    "error": TaskError(
                        code="internal_error", message=f"the run crashed: {failure!r}"
                    ),
                }
            )
        status = RunStatus.from_result(
            result,
            run_id=live.run_id,
            workflow=live.record.workflow,
            created_at=live.record.created_at,
            updated_at=now(),
        )
        for attempt in range(3):
            try:
                self._save(live, status, result)
                break
            except Exception:
                logger.exception("saving the result of run %s failed (%d)", live.run_id, attempt)
                time.sleep(0.1 * (attempt + 1))
        if self._forwarder is not None:  # its posters need not wait out their timeout
            self._forwarder.refuse(live.run_id, finished_error(live.run_id, status.state))
        with self._lock:
            self._live.pop(live.run_id, None)
        self.metrics.run_finished(status, time.monotonic() - live.started)
        logger.info("run %s finished: %s", live.run_id, status.state)

    # -- shutting down -------------------------------------------------------------------
    def close(self, timeout: float = 10.0) -> None:
        """Abort live runs, wait up to ``timeout`` for their results to be saved, and
        mark any still unsaved as failed."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            lives = list(self._live.values())
        if self._sweeper is not None:
            self._sweeper.stop()
        if self._requests is not None:
            self._requests.stop()
        with self._lock:
            threads = list(self._threads)
        for live in lives:
            live.aborting = True
            live.handle.abort()
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            left = list(self._live.values())
        for live in left:
            logger.error("run %s did not end in %ss; marking it failed", live.run_id, timeout)
            try:
                self.store.save(interrupt_status(live.record, SHUT_DOWN))
            except Exception:
                logger.exception("could not mark run %s failed", live.run_id)
        if self._own_store:
            self.store.close()
