"""Several processes on one SQLite store: claims, stale owners, fencing, waiting for events.

A mixin of :class:`~langchain_runtime.store.sqlite.SQLiteRunStore` (the methods of
:class:`~langchain_runtime.store.SharedRunStore`). Every write runs in the store's
``BEGIN IMMEDIATE`` transaction, so a claim and the writes it fences are serialised
across processes by SQLite's own write lock.
"""

from __future__ import annotations

import builtins
import json
import sqlite3
import threading
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from langchain_runtime.errors import ResumeError, StoreError
from langchain_runtime.store import _owner

__all__ = ["SharedMixin"]

_RUNS = "durable_runs d LEFT JOIN run_beats b ON b.run_id = d.run_id"
_LIVENESS = "d.state, d.owner, d.owner_started, COALESCE(b.heartbeat_at, d.heartbeat_at)"


class _LiveError(ResumeError):
    """The run is live under an owner: :meth:`SharedMixin.claim` says False."""


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _iso(when: datetime) -> str:
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc).isoformat()


class SharedMixin:
    """``claim``, ``mark_interrupted_stale``, ``wait_for_events`` and the owner fence."""

    _db: sqlite3.Connection
    _lock: threading.Lock
    _identity: str
    _begun: dict[str, int]
    #: run id -> (state, error) it had before this store claimed it
    _claimed: dict[str, tuple[str, str | None]]
    path: str
    stale_after: timedelta

    if TYPE_CHECKING:

        def _write(self) -> AbstractContextManager[None]: ...

        def _alive(
            self, run_id: str, owner: str | None, started: str | None, heartbeat: str | None
        ) -> bool: ...

        def events(self, run_id: str, after: int = -1) -> builtins.list[dict[str, Any]]: ...

    def _take(self, run_id: str, row: Sequence[Any] | None, *, held: bool = False) -> int:
        """Whether ``run_id`` (its liveness ``row``) may be taken: its new ``resumes``.

        In the write transaction. Raises ResumeError when there is no such run or a
        live owner has it (``held``: this store's own claim, taken over as it is).
        """
        if row is None:
            raise ResumeError(f"no run {run_id!r} in run store {self.path}")
        if held:
            return int(row[4])
        if row[0] == "running" and self._alive(run_id, row[1], row[2], row[3]):
            by = row[1] or "this process"
            raise _LiveError(f"run {run_id!r} is still live (executed by {by})")
        return int(row[4]) + 1

    def claim(self, run_id: str, owner: str) -> bool:
        """Take stored run ``run_id`` for ``owner`` if no live owner executes it.

        One ``BEGIN IMMEDIATE`` transaction: a run that is finished, interrupted, or
        ``running`` under an owner that is gone becomes ``running`` under ``owner``
        with a fresh heartbeat, and the previous owner's writes are refused from then
        on. Of any number of concurrent claims (any process) exactly one succeeds.
        Follow it with ``begin_run(header, resume=True)`` (which claims by itself:
        call this first only to hold the run while rebuilding its graph) or
        :meth:`finish_run`.

        Returns:
            False if the run is live (under any owner, this process included).

        Raises:
            ResumeError: There is no such run.
        """
        now = _iso(_now())
        started = None
        if owner == _owner.local_owner():
            started = _owner.process_started(int(owner.partition("@")[0]))
        try:
            with self._write():
                row = self._db.execute(
                    f"SELECT {_LIVENESS}, d.resumes, d.error FROM {_RUNS} WHERE d.run_id = ?",
                    (run_id,),
                ).fetchone()
                resumes = self._take(run_id, row)
                self._db.execute(
                    "UPDATE durable_runs SET state = 'running', updated_at = ?, error = NULL, "
                    "resumes = ?, owner = ?, owner_started = ?, heartbeat_at = ? WHERE run_id = ?",
                    (now, resumes, owner, started, now, run_id),
                )
                self._db.execute(
                    "INSERT OR REPLACE INTO run_beats VALUES (?, ?, ?)", (run_id, now, now)
                )
                _owner.register(self._identity, run_id)
                self._begun[run_id] = resumes
                self._claimed[run_id] = (row[0], row[5])
        except _LiveError:
            return False
        return True

    def release(self, run_id: str) -> None:
        """Let go of a run taken with :meth:`claim` and not begun: it gets back the
        state and error it had (a run that was ``running`` is ``interrupted``).

        Raises:
            StoreError: This store holds no such claim, or it was superseded.
        """
        try:
            with self._write():
                before = self._claimed.get(run_id)
                if before is None:
                    raise StoreError(f"run {run_id!r} is not claimed by this store")
                self._fenced(run_id, "the release")
                state = "interrupted" if before[0] == "running" else before[0]
                self._db.execute(
                    "UPDATE durable_runs SET state = ?, error = ? WHERE run_id = ?",
                    (state, before[1], run_id),
                )
        finally:
            with self._lock:
                if self._claimed.pop(run_id, None) is not None:
                    self._begun.pop(run_id, None)
                    _owner.unregister(self._identity, run_id)

    def mark_interrupted_stale(self, now: datetime | None = None) -> builtins.list[str]:
        """Mark ``interrupted`` every ``running`` run whose owner is gone; their ids.

        What a surviving process calls periodically: a run whose owner is on another
        host and whose heartbeat is older than ``stale_after`` (at ``now``, by default
        this clock), or whose owner process on this host no longer exists, is written
        ``interrupted`` (resumable) with an ``interrupted`` error; its owner's later
        writes are refused. Runs this process executes are never marked.
        """
        at = _now() if now is None else now.replace(tzinfo=now.tzinfo or timezone.utc)
        with self._write():
            rows = self._db.execute(
                f"SELECT d.run_id, {_LIVENESS} FROM {_RUNS} WHERE d.state = 'running' "
                "ORDER BY d.run_id"
            ).fetchall()
            stale = []
            for run_id, _, owner, started, beat in rows:
                when = datetime.fromisoformat(beat) if beat else None
                if not _owner.alive(
                    self._identity, run_id, owner, started, when, at, self.stale_after
                ):
                    error = {
                        "code": "interrupted",
                        "message": f"run {run_id!r}: its owner {owner} stopped "
                        f"(last heartbeat {beat}); resume it to continue",
                    }
                    stale.append((json.dumps(error, separators=(",", ":")), _iso(_now()), run_id))
            self._db.executemany(
                "UPDATE durable_runs SET state = 'interrupted', error = ?, updated_at = ? "
                "WHERE run_id = ?",
                stale,
            )
        return [run_id for _, _, run_id in stale]

    def _fenced(self, run_id: str, what: str) -> None:
        """Refuse ``what`` from this store if its claim on the run was superseded
        (in the write transaction)."""
        resumes = self._begun.get(run_id)
        if resumes is None:
            return  # not an owner's write (a run this store did not begin)
        row = self._db.execute(
            "SELECT 1 FROM durable_runs WHERE run_id = ? AND state = 'running' AND resumes = ?",
            (run_id, resumes),
        ).fetchone()
        if row is None:
            raise StoreError(
                f"{what} of run {run_id!r} refused: this process no longer owns it (it was "
                "marked interrupted or resumed elsewhere after its heartbeat went stale)"
            )

    def wait_for_events(
        self, run_id: str, after: int = -1, timeout: float = 10.0, *, poll: float = 0.25
    ) -> builtins.list[dict[str, Any]]:
        """The run's events with ``seq > after``, waiting up to ``timeout`` seconds for one.

        Reads the file every ``poll`` seconds (other processes write it): an empty list
        means nothing new within ``timeout``.
        """
        if timeout < 0 or poll <= 0:
            raise ValueError("timeout must be >= 0 and poll > 0 seconds")
        deadline = time.monotonic() + timeout
        while True:
            found = self.events(run_id, after)
            left = deadline - time.monotonic()
            if found or left <= 0:
                return found
            time.sleep(min(poll, left))
