"""Several replicas on one PostgreSQL run store: claims, stale owners and the fence.

A mixin of :class:`~langchain_runtime.store.postgres.PostgresRunStore` (the methods of
:class:`~langchain_runtime.store.SharedRunStore`, as ``_sqlite_shared`` is for SQLite).
A claim locks the run's row (``SELECT ... FOR UPDATE``); each write of an owner checks,
under a shared lock on that row, that its claim still stands.
"""

from __future__ import annotations

import builtins
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from langchain_runtime.errors import ResumeError, StoreError
from langchain_runtime.store import _owner
from langchain_runtime.store._pg import Database, dumps, utc

if TYPE_CHECKING:
    from psycopg import Connection

__all__ = ["PgClaimsMixin"]

_RUNS = "durable_runs d JOIN run_beats b ON b.run_id = d.run_id"
#: state, owner, owner_started, heartbeat, resumes, the database's clock
_LIVENESS = "d.state, d.owner, d.owner_started, b.heartbeat_at, d.resumes, clock_timestamp()"
#: Locks the run's row (shared: commits of one owner do not wait on each other) only
#: while it is still the claim this store made; a claim or a sweep waits for it.
_FENCE = "SELECT 1 FROM durable_runs WHERE run_id = %s AND state = 'running' AND resumes = %s"
_BEAT = (
    "UPDATE run_beats SET updated_at = clock_timestamp(), heartbeat_at = clock_timestamp() "
    "WHERE run_id = %s"
)


class _LiveError(ResumeError):
    """The run is live under an owner: :meth:`PostgresRunStore.claim` says False."""


class PgClaimsMixin:
    """``claim``, ``release``, ``mark_interrupted_stale`` and the owner fence."""

    _db: Database
    _lock: threading.Lock
    _identity: str
    #: run id -> the claim (``resumes``) this store holds on it, until finish_run
    _begun: dict[str, int]
    #: run id -> (state, error) it had before this store claimed it
    _claimed: dict[str, tuple[str, str | None]]
    stale_after: timedelta

    if TYPE_CHECKING:

        def _ensure_open(self) -> None: ...

    def _alive(
        self,
        run_id: str,
        owner: str | None,
        started: str | None,
        heartbeat: datetime | None,
        now: datetime,
    ) -> bool:
        stale = self.stale_after
        return _owner.alive(self._identity, run_id, owner, started, heartbeat, now, stale)

    @staticmethod
    def _started(owner: str | None) -> str | None:
        if owner is not None and owner == _owner.local_owner():
            return _owner.process_started(int(owner.partition("@")[0]))
        return None

    def _take(
        self, conn: Connection[Any], run_id: str, owner: str | None, *, claimed: bool = False
    ) -> int:
        """Lock the run's row and take it for ``owner``: its new ``resumes``.

        With ``claimed``, a run this store holds through :meth:`claim` is taken over
        as it is. Raises ResumeError when there is no such run or a live owner has it.
        """
        row = conn.execute(
            f"SELECT {_LIVENESS} FROM {_RUNS} WHERE d.run_id = %s FOR UPDATE OF d, b",
            (run_id,),
        ).fetchone()
        if row is None:
            raise ResumeError(f"no run {run_id!r} in run store at {self._db.where}")
        state, old_owner, started, beat, resumes, now = row
        with self._lock:
            mine = claimed and run_id in self._claimed and self._begun.get(run_id) == resumes
        if not mine and state == "running" and self._alive(run_id, old_owner, started, beat, now):
            raise _LiveError(
                f"run {run_id!r} is still live (executed by {old_owner or 'this process'})"
            )
        if mine:
            return int(resumes)
        conn.execute(
            "UPDATE durable_runs SET state = 'running', updated_at = clock_timestamp(), "
            "error = NULL, resumes = resumes + 1, owner = %s, owner_started = %s "
            "WHERE run_id = %s",
            (owner, self._started(owner), run_id),
        )
        conn.execute(_BEAT, (run_id,))
        return int(resumes) + 1

    def _taking(self, run_id: str, work: Callable[[Connection[Any]], int]) -> int:
        """Run ``work`` (which takes the run) and hold the run from inside its transaction.

        The run is registered as executed by this process *before* the transaction
        commits: another thread that waited on the row's lock then sees it live.
        """
        with self._lock:
            held = run_id in self._begun
        registered = False

        def taking(conn: Connection[Any]) -> int:
            nonlocal registered
            resumes = work(conn)
            _owner.register(self._identity, run_id)
            registered = True
            return resumes

        try:
            resumes = self._db.run(taking)
        except BaseException:
            if registered and not held:  # its transaction did not commit
                _owner.unregister(self._identity, run_id)
            raise
        with self._lock:
            self._begun[run_id] = resumes
        return resumes

    def claim(self, run_id: str, owner: str) -> bool:
        """Take stored run ``run_id`` for ``owner`` if no live owner executes it.

        One transaction with the run's row locked: a run that is finished,
        interrupted, or ``running`` under an owner that is gone becomes ``running``
        under ``owner`` with a fresh heartbeat, and the previous owner's writes are
        refused from then on. Of any number of concurrent claims (on any replica)
        exactly one succeeds. Follow it with ``begin_run(header, resume=True)`` (which
        claims by itself: call this first only to hold the run while rebuilding its
        graph) or :meth:`finish_run`.

        Returns:
            False if the run is live (under any owner, this process included).

        Raises:
            ResumeError: There is no such run.
        """
        self._ensure_open()

        before: list[tuple[str, str | None]] = []

        def work(conn: Connection[Any]) -> int:
            row = conn.execute(
                "SELECT state, error FROM durable_runs WHERE run_id = %s FOR UPDATE", (run_id,)
            ).fetchone()
            if row is not None:
                before.append((row[0], row[1]))
            return self._take(conn, run_id, owner)

        try:
            self._taking(run_id, work)
        except _LiveError:
            return False
        with self._lock:
            self._claimed[run_id] = before[0]
        return True

    def release(self, run_id: str) -> None:
        """Let go of a run taken with :meth:`claim` and not begun: it gets back the
        state and error it had (a run that was ``running`` is ``interrupted``).

        Raises:
            StoreError: This store holds no such claim, or it was superseded.
        """
        with self._lock:
            before = self._claimed.get(run_id)
        if before is None:
            raise StoreError(f"run {run_id!r} is not claimed by this store")
        state = "interrupted" if before[0] == "running" else before[0]

        def work(conn: Connection[Any]) -> None:
            self._fenced(conn, run_id, "the release")
            conn.execute(
                "UPDATE durable_runs SET state = %s, error = %s WHERE run_id = %s",
                (state, before[1], run_id),
            )

        try:
            self._db.run(work)
        finally:
            with self._lock:
                if self._claimed.pop(run_id, None) is not None:
                    self._begun.pop(run_id, None)
                    _owner.unregister(self._identity, run_id)

    def _fenced(self, conn: Connection[Any], run_id: str, what: str) -> None:
        """Refuse ``what`` from this store if its claim on the run was superseded."""
        with self._lock:
            resumes = self._begun.get(run_id)
        if resumes is None:
            return  # not an owner's write (a run this store did not begin)
        if conn.execute(_FENCE + " FOR SHARE", (run_id, resumes)).fetchone() is None:
            raise self._refused(run_id, what)

    @staticmethod
    def _refused(run_id: str, what: str) -> StoreError:
        return StoreError(
            f"{what} of run {run_id!r} refused: this process no longer owns it (it was "
            "marked interrupted or resumed elsewhere after its heartbeat went stale)"
        )

    def mark_interrupted_stale(self, now: datetime | None = None) -> builtins.list[str]:
        """Mark ``interrupted`` every ``running`` run whose owner is gone; their ids.

        What a surviving replica calls periodically: a run whose owner is on another
        host and whose heartbeat is older than ``stale_after`` (by the database's
        clock, or ``now``), or whose owner process on this host no longer exists, is
        written ``interrupted`` (resumable) with an ``interrupted`` error; its owner's
        later writes are refused. Runs this process executes are never marked.
        """
        self._ensure_open()

        def work(conn: Connection[Any]) -> builtins.list[str]:
            rows = conn.execute(
                "SELECT d.run_id, d.owner, d.owner_started, b.heartbeat_at, clock_timestamp() "
                f"FROM {_RUNS} WHERE d.state = 'running' ORDER BY d.run_id "
                "FOR UPDATE OF d, b SKIP LOCKED"
            ).fetchall()
            stale = []
            for run_id, owner, started, beat, db_now in rows:
                at = utc(now) if now is not None else db_now
                if not self._alive(run_id, owner, started, beat, at):
                    error = {
                        "code": "interrupted",
                        "message": f"run {run_id!r}: its owner {owner} stopped "
                        f"(last heartbeat {beat.isoformat()}); resume it to continue",
                    }
                    stale.append((dumps(error, "error"), run_id))
            if stale:
                with conn.cursor() as cur:
                    cur.executemany(
                        "UPDATE durable_runs SET state = 'interrupted', error = %s, "
                        "updated_at = clock_timestamp() WHERE run_id = %s",
                        stale,
                    )
            return [run_id for _, run_id in stale]

        return self._db.run(work)

    # -- durable runs ---------------------------------------------------------------------
