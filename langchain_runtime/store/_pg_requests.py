"""A mailbox of requests to the replica that executes a run, in PostgreSQL.

A mixin of :class:`~langchain_runtime.store.postgres.PostgresRunStore` (the methods of
:class:`~langchain_runtime.store.RunMailbox`), over the table ``run_requests``. A
replica that is asked to change a run executing elsewhere (add a task) posts a
request; the executing replica takes it (one ``UPDATE ... RETURNING``: of two
takers, one gets it), applies it and writes the answer; the poster collects the
answer (and with it the row), or withdraws the request while it is still pending.

States: ``pending`` (posted) -> ``taken`` (by the executing replica) -> ``answered``.
Each request expires at its poster's deadline, set with the *database's* clock when
it is posted (``expires_at``, so skewed host clocks do not matter): a request is
taken only before it expires, so one its poster could not withdraw (the database
did not answer) is never applied after the poster gave up. A withdrawn request is
deleted, an answered one when it is collected, and any one when its poster gives up
on it (:meth:`PgRequestsMixin.drop_request`); what is left of a poster that stopped
(pending, taken by a replica that died before answering, or answered) is purged
by :meth:`PgRequestsMixin.purge_requests`.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from langchain_runtime.store._base import MailboxRequest
from langchain_runtime.store._pg import Database, dumps

__all__ = ["PgRequestsMixin"]

_POST = (
    "INSERT INTO run_requests (run_id, kind, body, expires_at) "
    "VALUES (%s, %s, %s, clock_timestamp() + make_interval(secs => %s)) RETURNING id"
)
_TAKE = (
    "UPDATE run_requests SET state = 'taken', taken_at = clock_timestamp() "
    "WHERE id IN (SELECT id FROM run_requests WHERE state = 'pending' AND run_id = ANY(%s) "
    "AND expires_at > clock_timestamp() ORDER BY id FOR UPDATE SKIP LOCKED) "
    "AND state = 'pending' AND expires_at > clock_timestamp() "
    "RETURNING id, run_id, kind, body"
)


class PgRequestsMixin:
    """``post_request``, ``take_requests``, ``answer_request``, ``collect_answer``,
    ``withdraw_request``, ``drop_request`` and ``purge_requests`` over ``run_requests``."""

    _db: Database

    if TYPE_CHECKING:

        def _ensure_open(self) -> None: ...

    def post_request(
        self, run_id: str, kind: str, body: Mapping[str, Any], *, expires_in: float
    ) -> int:
        """Ask the replica executing ``run_id`` for something (``kind``, JSON ``body``),
        takeable for ``expires_in`` seconds from now (the database's clock); the
        request's id."""
        if not expires_in > 0:
            raise ValueError(f"expires_in must be > 0 seconds, got {expires_in!r}")
        text = dumps(dict(body), f"request to run {run_id!r}")
        self._ensure_open()
        row = self._db.run(
            lambda c: c.execute(_POST, (run_id, kind, text, float(expires_in))).fetchone(),
            transaction=False,
        )
        assert row is not None  # INSERT ... RETURNING returns the row
        return int(row[0])

    def take_requests(self, run_ids: Sequence[str]) -> builtins.list[MailboxRequest]:
        """Take the pending requests to any of ``run_ids`` that have not expired,
        oldest first.

        Atomic across replicas: a request is taken once, by one caller; the caller
        must answer it (:meth:`answer_request`). An expired request is left alone:
        its poster has given up on it.
        """
        if not run_ids:
            return []
        self._ensure_open()
        args = (builtins.list(run_ids),)
        rows = self._db.run(lambda c: c.execute(_TAKE, args).fetchall(), transaction=False)
        taken = [MailboxRequest(int(r[0]), r[1], r[2], json.loads(r[3])) for r in rows]
        return sorted(taken, key=lambda r: r.id)

    def answer_request(self, request_id: int, answer: Mapping[str, Any]) -> bool:
        """Write the answer to a request this caller took; False if it is not taken
        (unknown, answered already, or dropped by its poster)."""
        text = dumps(dict(answer), f"answer to request {request_id}")
        self._ensure_open()
        return self._db.run(
            lambda c: (
                c.execute(
                    "UPDATE run_requests SET state = 'answered', answer = %s, "
                    "answered_at = clock_timestamp() WHERE id = %s AND state = 'taken'",
                    (text, request_id),
                ).rowcount
                == 1
            ),
            transaction=False,
        )

    def collect_answer(self, request_id: int) -> dict[str, Any] | None:
        """The answer to a request, which is removed with it; None while unanswered."""
        self._ensure_open()
        row = self._db.run(
            lambda c: c.execute(
                "DELETE FROM run_requests WHERE id = %s AND state = 'answered' RETURNING answer",
                (request_id,),
            ).fetchone(),
            transaction=False,
        )
        return None if row is None else dict(json.loads(row[0]))

    def withdraw_request(self, request_id: int) -> bool:
        """Remove a request nobody has taken: True; False if it was taken already
        (its answer will come: :meth:`collect_answer`)."""
        self._ensure_open()
        return self._db.run(
            lambda c: (
                c.execute(
                    "DELETE FROM run_requests WHERE id = %s AND state = 'pending'", (request_id,)
                ).rowcount
                == 1
            ),
            transaction=False,
        )

    def drop_request(self, request_id: int) -> dict[str, Any] | None:
        """Remove a request whatever its state (its poster gives up on it); its
        answer if it had one by then, else None."""
        self._ensure_open()
        row = self._db.run(
            lambda c: c.execute(
                "DELETE FROM run_requests WHERE id = %s RETURNING state, answer", (request_id,)
            ).fetchone(),
            transaction=False,
        )
        if row is None or row[0] != "answered" or row[1] is None:
            return None
        return dict(json.loads(row[1]))

    def purge_requests(self, older_than: timedelta = timedelta(minutes=10)) -> int:
        """Delete the requests that expired more than ``older_than`` ago, whatever
        their state (their posters gave up on them at expiry: never taken, taken by a
        replica that stopped before answering, or answered and never collected);
        how many."""
        self._ensure_open()
        return int(
            self._db.run(
                lambda c: (
                    c.execute(
                        "DELETE FROM run_requests "
                        "WHERE expires_at < clock_timestamp() - make_interval(secs => %s)",
                        (older_than.total_seconds(),),
                    ).rowcount
                ),
                transaction=False,
            )
        )
