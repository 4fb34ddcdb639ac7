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
"""

from __future__ import annotations

import inspect
import json
import logging
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from langchain_core.runnables import RunnableConfig
from pydantic_core import to_jsonable_python

from langchain_runtime.api.errors import (
    ApiError,
    PayloadTooLargeError,
    RunExistsError,
    RunNotFoundError,
    TooManyRunsError,
)
from langchain_runtime.api.schemas import (
    TERMINAL_STATES,
    ApiRunState,
    ResumeRequest,
    RunAccepted,
    RunPage,
    RunRequest,
    RunStatus,
    RunSummary,
    TaskAccepted,
    TaskSpec,
    TaskStatus,
)
from langchain_runtime.api.server._build import build_orchestrator, build_task
from langchain_runtime.api.server._charges import DeadRunCharges
from langchain_runtime.api.server._durable import interrupted_record, resume_budget
from langchain_runtime.api.server._forward import Forwarder, finished_error
from langchain_runtime.api.server._keys import Principal
from langchain_runtime.api.server._metrics import Metrics
from langchain_runtime.api.server._replicas import ABORT_KEY, Sweeper, is_shared, remote_status
from langchain_runtime.api.server._tenancy import scoped
from langchain_runtime.api.store import RunRecord, RunStore, interrupt_status
from langchain_runtime.config import RuntimeConfig
from langchain_runtime.domain import RunEvent, RunResult, RunState, TaskError
from langchain_runtime.errors import (
    InvalidInputError,
    LangChainRuntimeError,
    ResumeError,
    RunAbortedError,
    RunFinishedError,
)
from langchain_runtime.orchestration import Orchestrator, RunHandle
from langchain_runtime.orchestration._accounting import dead_holders, lease_holder
from langchain_runtime.store import DurableRunStore, RunMailbox, StoredRun

if TYPE_CHECKING:
    from langchain_runtime.cost.ledger import BudgetLedger

__all__ = ["RunManager"]

logger = logging.getLogger(__name__)

INTERRUPTED = "the server stopped while this run was in flight; it was not resumed"
RESUMABLE = (
    "the server stopped while this run was in flight; its completed tasks are kept: "
    "resume it with POST /api/v1/runs/{run_id}/resume"
)
SHUT_DOWN = "the server shut down before this run ended"
#: Keys of a stored request that are the server's, not the client's: who submitted
#: the run (an API key's name) and the ledger scopes its calls reserve in.
OWNER_KEY = "_owner"
SCOPES_KEY = "_scopes"
_LIST_PAGE = 500
_UNFINISHED = ("pending", "running", "aborting")


def client_request(request: Mapping[str, Any]) -> dict[str, Any]:
    """A stored request without the server's own keys (what the client sent)."""
    return {k: v for k, v in request.items() if k not in (OWNER_KEY, SCOPES_KEY, ABORT_KEY)}


def owner_of(record: RunRecord) -> str | None:
    """The name of the API key that submitted the run (None: no keys were in use)."""
    owner = record.request.get(OWNER_KEY)
    return owner if isinstance(owner, str) else None


def visible(record: RunRecord, principal: Principal | None) -> bool:
    """Whether ``principal`` may see the run: the single user and admins see all."""
    return principal is None or principal.admin or owner_of(record) == principal.name


class ShuttingDownError(ApiError):
    code = "shutting_down"
    status_code = 503


def _refused(message: str, code: str) -> ResumeError:
    exc = ResumeError(message)
    exc.code = code  # run_live (409) or resume_refused (422): see api.errors.ERROR_TABLE
    return exc


def _not_executing(record: RunRecord, stored: StoredRun | None) -> LangChainRuntimeError:
    """Why a run that executes nowhere cannot be changed: it ended, or its replica
    stopped (``stored``: its durable run, if any)."""
    run_id = record.run_id
    if stored is not None and record.state in _UNFINISHED:  # its record not saved yet
        if stored.state not in ("running", "interrupted"):
            return finished_error(run_id, stored.state)
        return RunFinishedError(f"run {run_id} was interrupted (its replica stopped)")
    return finished_error(run_id, record.state)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def encode_event(event: RunEvent, run_id: str) -> dict[str, Any]:
    """A committed event as JSON, under the API's run id."""
    return {
        "seq": event.seq,
        "type": event.type,
        "run_id": run_id,
        "task_id": event.task_id,
        "data": to_jsonable_python(event.data, fallback=str),
        "ts": event.ts.isoformat(),
    }


@dataclass
class _Live:
    run_id: str
    handle: RunHandle
    record: RunRecord
    default_model: str | None
    started: float
    aborting: bool = False
    saved_seq: int = -1
    #: task id -> (the result it was encoded from, or a placeholder's state; its JSON
    #: object member, id included)
    task_json: dict[str, tuple[Any, str]] = field(default_factory=dict)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


class RunManager:
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
        self._live: dict[str, _Live] = {}
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._durable: DurableRunStore | None = (
            store if isinstance(store, DurableRunStore) else None
        )
        self._sweeper: Sweeper | None = None
        self._requests: Sweeper | None = None
        # the calls dead runs had in flight are charged at their hold in the ledger
        self._charges = DeadRunCharges(ledger, self._dead_holders)
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
                if record is None or stored is None or record.state not in _UNFINISHED:
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
        if not self._shared or self._durable is None or record.state not in _UNFINISHED:
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
                failed = replace(record, state="failed", updated_at=_now())
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
    ) -> tuple[_Live, threading.Thread]:
        """Register a live run and its (not yet started) watcher; the caller holds the lock."""
        live = _Live(run_id, handle, record, default_model, time.monotonic())
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
            raise _refused(
                "this server's store keeps no durable runs; start the server with a store "
                "file to resume runs",
                "resume_refused",
            )
        if self._get_live(run_id) is not None:
            raise _refused(f"run {run_id} is live on this server", "run_live")
        stored = self._durable.load_run(run_id)
        if stored is None:
            raise _refused(f"run {run_id} has no durable record to resume", "resume_refused")
        if stored.live:
            raise _refused(f"run {run_id} is live (executed by {stored.header.owner})", "run_live")
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
                raise _refused(f"run {run_id} is live on this server", "run_live")
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
            running = replace(record, state="running", updated_at=_now(), request=request_json)
            self.store.save(running)
            live, thread = self._watch_in_background(run_id, handle, running, default_model)
        self.metrics.run_submitted()
        thread.start()
        logger.info("run %s resumed (%d task(s) kept)", run_id, len(stored.tasks))
        return RunAccepted(run_id=run_id, state=self._state(live, handle.status().value))

    # -- the background side ----------------------------------------------------------
    @staticmethod
    def _state(live: _Live, state: str) -> ApiRunState:
        """The API state of a live run: a terminal state is not shown before it is saved."""
        if live.aborting:
            return "aborting"
        if state in TERMINAL_STATES:
            return "running"
        return "pending" if state == "pending" else "running"

    def _live_status(self, live: _Live, result: RunResult, state: ApiRunState) -> RunStatus:
        return RunStatus.from_result(
            result,
            run_id=live.run_id,
            state=state,
            workflow=live.record.workflow,
            created_at=live.record.created_at,
            updated_at=_now(),
        )

    def _save(self, live: _Live, status: RunStatus, result: RunResult) -> None:
        # a durable run stored its events with its commits (the last one included)
        events = (
            []
            if self._durable is not None and result.events
            else [encode_event(e, live.run_id) for e in result.events if e.seq > live.saved_seq]
        )
        record = replace(
            live.record,
            state=status.state,
            updated_at=status.updated_at or _now(),
            status=status.model_dump(mode="json"),
        )
        self.store.save(record, events)
        if events:
            live.saved_seq = events[-1]["seq"]

    def _watch(self, live: _Live) -> None:
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

    def _abort_if_asked(self, live: _Live) -> None:
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
        self, live: _Live, result: RunResult | None, failure: BaseException | None
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
            updated_at=_now(),
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

    # -- reading ------------------------------------------------------------------------
    def _get_live(self, run_id: str) -> _Live | None:
        with self._lock:
            return self._live.get(run_id)

    def _load(self, run_id: str, principal: Principal | None = None) -> RunRecord:
        record = self.store.load(run_id)
        if record is None or not visible(record, principal):
            raise RunNotFoundError(f"no run with id {run_id!r}")
        return record

    def _visible_live(self, run_id: str, principal: Principal | None) -> _Live | None:
        """The live run if ``principal`` may see it; None if not live; 404 if not theirs."""
        live = self._get_live(run_id)
        if live is not None and not visible(live.record, principal):
            raise RunNotFoundError(f"no run with id {run_id!r}")
        return live

    def _live_body(self, live: _Live) -> str:
        """A live run's status as JSON text, re-encoding only the tasks that changed.

        A task's result object stays the same until the task changes, so a poll of a
        long run costs what changed since the last one, not a re-encoding of every
        task (which made a 5,000-task run spend most of its time answering polls).
        """
        snap = live.handle.snapshot()
        state = self._state(live, snap.state.value)
        head = self._live_status(live, snap.model_copy(update={"tasks": {}}), state)
        parts = []
        cache = live.task_json
        for tid, tr in snap.tasks.items():
            # a task not started yet is a fresh placeholder in every snapshot: by state
            key: Any = tr.state if tr.model_fields_set <= {"task_id", "state"} else tr
            hit = cache.get(tid)
            if hit is None or hit[0] is not key:
                encoded = _dumps(TaskStatus.from_result(tr).model_dump(mode="json"))
                hit = (key, f"{_dumps(tid)}:{encoded}")
                cache[tid] = hit
            parts.append(hit[1])
        body = head.model_dump(mode="json")
        body.pop("tasks", None)
        text = _dumps(body)
        return f'{text[:-1]},"tasks":{{{",".join(parts)}}}}}'

    def status_body(self, run_id: str, principal: Principal | None = None) -> str:
        """The run's status as JSON text (what ``GET /api/v1/runs/{id}`` answers)."""
        live = self._visible_live(run_id, principal)
        if live is not None:
            return self._live_body(live)
        return _dumps(self.status(run_id, principal))

    def status(self, run_id: str, principal: Principal | None = None) -> dict[str, Any]:
        """The run's status as JSON: live from its handle, else from the store."""
        live = self._visible_live(run_id, principal)
        if live is not None:
            result: dict[str, Any] = json.loads(self._live_body(live))
            return result
        record = self._load(run_id, principal)
        stored = self._elsewhere(record)
        if stored is not None and stored.live:
            return remote_status(record, stored)
        if stored is not None and stored.state == "interrupted":
            # its replica stopped: what the next sweep will write
            return dict(
                interrupted_record(record, stored, RESUMABLE.format(run_id=run_id)).status or {}
            )
        if record.status is not None:
            return dict(record.status)
        return RunStatus(
            run_id=run_id,
            state=record.state,
            workflow=record.workflow,
            created_at=record.created_at,
            updated_at=record.updated_at,
        ).model_dump(mode="json")

    def _list(
        self, limit: int, offset: int, state: str | None, principal: Principal | None
    ) -> tuple[list[RunRecord], int]:
        """A page of the runs ``principal`` may see, and how many there are."""
        if principal is None or principal.admin:
            return self.store.list(limit=limit, offset=offset, state=state)
        if "owner" in inspect.signature(self.store.list).parameters:  # filtered in the store
            records, total = self.store.list(  # type: ignore[call-arg]
                limit=limit, offset=offset, state=state, owner=principal.name
            )
            return records, total
        # a store that cannot filter by owner: read it all, a page at a time
        mine: list[RunRecord] = []
        start = 0
        while True:
            page, total = self.store.list(limit=_LIST_PAGE, offset=start, state=state)
            mine += [r for r in page if owner_of(r) == principal.name]
            start += len(page)
            if not page or start >= total:
                break
        return mine[offset : offset + limit], len(mine)

    def list_runs(
        self,
        *,
        limit: int,
        offset: int,
        state: str | None,
        principal: Principal | None = None,
    ) -> RunPage:
        records, total = self._list(limit, offset, state, principal)
        items = []
        for record in records:
            live = self._get_live(record.run_id)
            if live is not None:  # its record is as of its start: read the run itself
                snap = live.handle.snapshot()
                items.append(
                    RunSummary(
                        run_id=record.run_id,
                        state=self._state(live, snap.state.value),
                        workflow=record.workflow,
                        created_at=record.created_at,
                        updated_at=_now(),
                        tasks=len(snap.tasks),
                        total_tokens=snap.usage.total_tokens,
                        cost=snap.cost,
                    )
                )
                continue
            status = dict(record.status or {})
            cost = status.get("cost") or {}
            items.append(
                RunSummary(
                    run_id=record.run_id,
                    state=record.state,
                    workflow=record.workflow,
                    created_at=record.created_at,
                    updated_at=record.updated_at,
                    tasks=len(status.get("tasks") or {}),
                    total_tokens=int((status.get("usage") or {}).get("total_tokens") or 0),
                    cost=cost,
                )
            )
        return RunPage(items=items, total=total, limit=limit, offset=offset)

    def live_events(
        self, run_id: str, after: int, principal: Principal | None = None
    ) -> list[dict[str, Any]] | None:
        """Events after ``after`` of a live run, or None when the run is not live."""
        live = self._visible_live(run_id, principal)
        if live is None:
            return None
        # seq is the index in the committed log
        return [encode_event(e, run_id) for e in live.handle.events()[after + 1 :]]

    def stored_events(
        self, run_id: str, after: int, principal: Principal | None = None
    ) -> tuple[list[dict[str, Any]], str]:
        """Stored events after ``after`` and the run's state (raises when unknown)."""
        record = self._load(run_id, principal)
        return self.store.events(run_id, after), record.state

    def active(self) -> int:
        with self._lock:
            return len(self._live)

    def task_count(self, run_id: str, principal: Principal | None = None) -> int | None:
        """How many tasks a live run has (pending ones included), or None if not live."""
        live = self._visible_live(run_id, principal)
        return None if live is None else len(live.handle.snapshot().tasks)

    # -- steering ----------------------------------------------------------------------
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
            self.store.save(replace(record, request=asked, updated_at=_now()))
            return RunAccepted(run_id=run_id, state="aborting")
        raise _not_executing(record, stored)

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
        raise _not_executing(record, stored)

    def _enqueue_live(self, live: _Live, spec: TaskSpec, max_tasks: int | None) -> TaskAccepted:
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
        return self._shared and stored is None and record.state in _UNFINISHED

    def _forward(
        self, record: RunRecord, stored: StoredRun | None, spec: TaskSpec, max_tasks: int | None
    ) -> TaskAccepted:
        """Add a task to a run executing on another replica (``stored``: its durable
        run, None if not begun yet), through the mailbox."""
        run_id = record.run_id
        owner = stored.header.owner if stored is not None else None
        if self._forwarder is None:
            raise _refused(
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


def handle_snapshot_or_empty(live: _Live) -> RunResult:
    try:
        return live.handle.snapshot()
    except Exception:
        logger.exception("no snapshot of run %s", live.run_id)
        return RunResult(run_id=live.run_id, state="failed")
