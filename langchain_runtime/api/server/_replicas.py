"""Several sidecars on one shared store (``serve --database postgresql://...``).

A store is *shared* when replicas use it together
(:class:`~langchain_runtime.store.postgres.PostgresRunStore`, which tells a dead
replica's runs from live ones: ``mark_interrupted_stale``).
On such a store a replica:

- never marks every unfinished run failed when it starts (they may be running on
  another replica); it sweeps instead: every ``sweep_interval`` seconds it calls
  ``mark_interrupted_stale()`` and reports those runs ``failed``/``interrupted``
  with their committed tasks, resumable on any replica;
- reads a run executing on another replica from the store (committed tasks, the
  event log), so any replica answers ``GET``, ``/events`` and ``resume``;
- aborts a run executing on another replica (or submitted there, not begun yet)
  by writing an abort request into the run's record; the executing replica polls
  its runs' records and aborts;
- adds a task to a run executing on another replica (``POST .../tasks``) through
  the store's mailbox (:class:`~langchain_runtime.store.RunMailbox`): it checks the
  task as the executing replica would (its models, its prompts), posts it (to expire
  at its deadline, ``forward_timeout`` seconds) and waits for the answer. The
  executing replica reads the requests to its live runs (those just submitted, not
  begun yet, included) every ``request_poll_interval`` seconds (one statement for
  all of them, which takes each unexpired request once), adds the task exactly as
  for a local caller and writes the answer; the caller gets that answer (202, or
  the same error it would get there: ``dag_invalid``, ``run_completed``...). A
  request not taken by the deadline is withdrawn (503 ``replica_unavailable``: the
  task was not added); one taken but not answered a second later is given up (504
  ``enqueue_unknown``: it may have been added); a run that ends meanwhile answers
  its pending requests ``run_completed`` (or ``run_aborted``). An added task is
  stored with the run (its spec), so it survives a failover and a resume like one
  added locally. Both sides are in :mod:`._forward`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from langchain_runtime.api.schemas import RunStatus
from langchain_runtime.api.server._durable import stored_result
from langchain_runtime.api.store import RunRecord
from langchain_runtime.domain import RunState, TaskResult, TaskState
from langchain_runtime.store import StoredRun

__all__ = ["ABORT_KEY", "Sweeper", "is_shared", "remote_status"]

logger = logging.getLogger(__name__)

#: A stored request's key that asks the executing replica to abort the run.
ABORT_KEY = "_abort"


def is_shared(store: object) -> bool:
    """Whether ``store`` is one that replicas share (PostgreSQL).

    An SQLite store file belongs to one server (``serve --store``): at start that
    server marks every unfinished run interrupted, as before.
    """
    from langchain_runtime.store.postgres import PostgresRunStore

    return isinstance(store, PostgresRunStore)


def remote_status(record: RunRecord, stored: StoredRun) -> dict[str, Any]:
    """A run executing on another replica, as the store has it: ``running``, its
    committed tasks as they are, the others ``pending``."""
    result = stored_result(stored, state=RunState.RUNNING, error=None)
    tasks = {
        tid: tr if tid in stored.tasks else TaskResult(task_id=tid, state=TaskState.PENDING)
        for tid, tr in result.tasks.items()
    }
    result = result.model_copy(update={"tasks": tasks})
    aborting = bool(record.request.get(ABORT_KEY))
    return RunStatus.from_result(
        result,
        run_id=record.run_id,
        state="aborting" if aborting else "running",
        workflow=record.workflow,
        created_at=record.created_at,
        updated_at=datetime.now(timezone.utc),
    ).model_dump(mode="json")


class Sweeper:
    """Calls ``sweep`` every ``interval`` seconds in a daemon thread until stopped
    (the sweep for runs of stopped replicas; the read of forwarded requests)."""

    def __init__(
        self,
        sweep: Callable[[], object],
        interval: float,
        *,
        name: str = "lcr-sweeper",
        what: str = "sweeping for runs of stopped replicas",
        setting: str = "sweep_interval",
    ) -> None:
        if interval <= 0:
            raise ValueError(f"{setting} must be > 0 seconds, got {interval!r}")
        self._sweep = sweep
        self._interval = interval
        self._what = what
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> Sweeper:
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._sweep()
            except Exception:  # the store is down: try again next time
                logger.exception("%s failed", self._what)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
