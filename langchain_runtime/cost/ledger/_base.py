"""The :class:`BudgetLedger` interface, and what every backend gets from it for free.

The public methods validate their arguments, read the clock, replay the settle journal
and retry settlements; a backend implements only the ``_``-prefixed storage methods,
each one transaction, raising :class:`~langchain_runtime.errors.LedgerUnavailableError`
when its storage cannot answer.
"""

from __future__ import annotations

import logging
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Literal

from langchain_runtime.cost.ledger._journal import SettleJournal
from langchain_runtime.cost.ledger._model import (
    Clock,
    Lease,
    ScopeLimit,
    ScopeStatus,
    Window,
    check_scope,
    normalize_scopes,
    to_decimal,
    utc_now,
)
from langchain_runtime.errors import LedgerUnavailableError

__all__ = ["DEFAULT_LEASE_TTL", "BudgetLedger", "SettleOutcome", "Written"]

logger = logging.getLogger(__name__)

#: How long a reservation holds budget unless it is renewed or settled first.
DEFAULT_LEASE_TTL = timedelta(minutes=5)

#: ``settled``: written now; ``corrected``: written now, replacing the charge at
#: its hold that :meth:`BudgetLedger.charge_held` had recorded for this id (its holder
#: had been declared dead; spend moved by real minus hold); ``duplicate``: this id was
#: settled before (nothing changed); ``journaled``: the ledger could not be written,
#: kept for replay.
SettleOutcome = Literal["settled", "corrected", "duplicate", "journaled"]
#: What a backend's ``_settle`` did (``journaled`` is decided above it).
Written = Literal["settled", "corrected", "duplicate"]


class BudgetLedger(ABC):
    """Named budgets shared by every run and process that uses the same ledger.

    A scope (``"team:research"``, ``"user:42"``) has optional cost and token limits
    and an optional window (``"hour"``, ``"day"``, ``"week"``, ``"month"`` in UTC, or a
    ``timedelta``); each window starts clean. A scope nobody set a limit on is tracked
    with no limit.

    A model call reserves its worst case in every scope that covers it at once, all
    or nothing (:meth:`reserve`), as a :class:`Lease` that expires after ``lease_ttl``
    unless renewed: a crashed process cannot hold budget for ever. :meth:`settle`
    replaces the hold by the real cost exactly once per reservation id, even after the
    lease expired (spend is never lost).

    A lease may name its ``holder`` (an orchestrator run's id). The ledger alone cannot
    tell a crashed process from a slow one, so a lease nobody settles expires and frees
    its hold; but when the runtime knows the holder died (a sweep found its replica
    gone, a server restarted, the run is being resumed), :meth:`charge_held` charges
    the holder's unsettled leases at their hold, the most their calls can have been
    billed, instead of letting that budget be spent twice. A real settlement arriving
    later (the process was only paused) replaces the charge, once.

    When the storage cannot answer, reservations
    are refused with :class:`~langchain_runtime.errors.LedgerUnavailableError` (the
    ledger fails closed) and settlements are retried, then kept in a
    :class:`SettleJournal` and replayed when the storage is back.

    Args:
        clock: Returns the current time (aware, UTC); injectable for tests.
        lease_ttl: The default lifetime of a reservation.
        journal: Where settlements that cannot be written wait: a
            :class:`SettleJournal`, a file path for one, or None for one in memory.
        settle_attempts: How many times a settlement is tried before it is journaled.
        retry_delay: Seconds between those attempts (doubling each time).
    """

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        lease_ttl: timedelta = DEFAULT_LEASE_TTL,
        journal: SettleJournal | str | Path | None = None,
        settle_attempts: int = 3,
        retry_delay: float = 0.05,
    ) -> None:
        if lease_ttl <= timedelta(0):
            raise ValueError(f"lease_ttl must be longer than zero, got {lease_ttl!r}")
        if settle_attempts < 1:
            raise ValueError("settle_attempts must be >= 1")
        self.clock: Clock = clock if clock is not None else utc_now
        self.lease_ttl = lease_ttl
        self.journal = journal if isinstance(journal, SettleJournal) else SettleJournal(journal)
        self.settle_attempts = settle_attempts
        self.retry_delay = retry_delay

    # -- public interface -----------------------------------------------------------

    def set_limit(
        self,
        scope: str,
        *,
        max_cost: Decimal | int | float | str | None = None,
        max_tokens: int | None = None,
        window: Window = None,
    ) -> ScopeLimit:
        """Set (or replace) a scope's limits; None removes that limit.

        Spend already recorded stays; a new window kind counts from its current window.
        """
        limit = ScopeLimit.build(scope, max_cost, max_tokens, window)
        self._replay()
        self._set_limit(limit, self._now())
        return limit

    def status(self, scope: str) -> ScopeStatus:
        """Spent, reserved and remaining in ``scope``'s current window."""
        check_scope(scope)
        self._replay()
        return self._status(scope, self._now())

    def list_scopes(self) -> list[str]:
        """Every scope the ledger knows (with a limit, or with recorded spend), sorted."""
        return sorted(self._list_scopes())

    def reserve(
        self,
        scopes: Iterable[str] | str,
        *,
        cost: Decimal | int | float | str = 0,
        tokens: int = 0,
        lease_ttl: timedelta | None = None,
        reservation_id: str | None = None,
        holder: str | None = None,
    ) -> Lease:
        """Hold ``cost`` and ``tokens`` in every one of ``scopes``, or in none.

        Args:
            scopes: The scopes that cover the call.
            cost: Its worst-case cost.
            tokens: Its worst-case tokens (input plus the output limit).
            lease_ttl: How long the hold lasts unless renewed (the ledger's default).
            reservation_id: An id of your own (e.g. the call's run id); a new one
                otherwise. Reserving again under a held id replaces that hold.
            holder: Who makes the call (e.g. its run's id), for :meth:`charge_held`;
                None: the lease only ever expires (its hold is then freed).

        Raises:
            BudgetExceededError: It does not fit in one of the scopes (nothing is held).
            LedgerUnavailableError: The ledger cannot answer (nothing is held: the call
                must not be sent).
        """
        names = normalize_scopes(scopes)
        amount = to_decimal(cost, "cost")
        if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 0:
            raise ValueError(f"tokens must be an integer >= 0, got {tokens!r}")
        ttl = self.lease_ttl if lease_ttl is None else lease_ttl
        if ttl <= timedelta(0):
            raise ValueError(f"lease_ttl must be longer than zero, got {ttl!r}")
        lease_id = reservation_id if reservation_id is not None else uuid.uuid4().hex
        if not isinstance(lease_id, str) or not lease_id:
            raise ValueError(f"reservation_id must be a non-empty string, got {lease_id!r}")
        if holder is not None:
            _check_holder(holder)
        self._replay()
        now = self._now()
        return self._reserve(Lease(lease_id, names, amount, tokens, now + ttl, holder), now)

    def renew(self, reservation_id: str, *, lease_ttl: timedelta | None = None) -> datetime | None:
        """Extend a live lease; returns its new expiry, or None if it is not live.

        A lease that already expired, was settled or released is not revived (its
        hold may have been given to another call); its call can still be settled.
        """
        ttl = self.lease_ttl if lease_ttl is None else lease_ttl
        now = self._now()
        expires = now + ttl
        return expires if self._renew(reservation_id, now, expires) else None

    def settle(
        self, reservation_id: str, *, cost: Decimal | int | float | str, tokens: int = 0
    ) -> SettleOutcome:
        """Record a call's real cost in its scopes and drop its hold, once per id.

        Works on an expired lease too (the late spend is recorded), and on a lease
        :meth:`charge_held` charged at its hold: the real cost replaces that charge
        (``"corrected"``), so a process declared dead that was only paused still
        records the truth, and nothing is counted twice. When the ledger cannot be
        written after ``settle_attempts`` tries, the settlement is kept in the journal
        and replayed later: it returns ``"journaled"`` and never raises for that reason.

        Raises:
            KeyError: No reservation with this id was ever made in this ledger.
        """
        amount = to_decimal(cost, "cost")
        if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 0:
            raise ValueError(f"tokens must be an integer >= 0, got {tokens!r}")
        try:
            self._replay()
        except LedgerUnavailableError as exc:
            self.journal.add(reservation_id, amount, tokens)
            logger.warning("ledger unavailable, settlement %s journaled: %s", reservation_id, exc)
            return "journaled"
        delay = self.retry_delay
        for attempt in range(1, self.settle_attempts + 1):
            try:
                written = self._settle(reservation_id, amount, tokens, self._now())
            except LedgerUnavailableError as exc:
                if attempt == self.settle_attempts:
                    self.journal.add(reservation_id, amount, tokens)
                    logger.warning(
                        "ledger unavailable after %d attempts, settlement %s journaled: %s",
                        attempt,
                        reservation_id,
                        exc,
                    )
                    return "journaled"
                time.sleep(delay)
                delay *= 2
            else:
                return written
        raise AssertionError("unreachable")  # pragma: no cover

    def charge_held(self, holder: str) -> int:
        """Charge every unsettled lease of a dead ``holder`` at its hold; how many.

        Call it when ``holder`` (a run's id) is known to have died with calls in
        flight: its process was killed, its replica stopped. Each of its leases still
        held (live, or expired and so already freed for others) is settled at the cost
        and tokens it reserved -- the most its call can have been billed, since a
        provider normally bills a request whose answer never arrived -- in the windows
        it was reserved in, exactly once per lease. Released and settled leases are
        left alone. Calling it again charges nothing twice (it returns 0), so a caller
        may retry it freely after ``LedgerUnavailableError``.

        Never call it for a holder that is still running: its calls would be charged
        while in flight (their later settlements still correct the spend, but their
        leases can no longer be renewed). A later :meth:`settle` of a charged lease
        replaces the charge by the real cost (``"corrected"``), once.

        Raises:
            LedgerUnavailableError: The ledger cannot answer (nothing was charged).
        """
        _check_holder(holder)
        self._replay()
        return self._charge_held(holder, self._now())

    def release(self, reservation_id: str) -> bool:
        """Drop the hold of a call that was never sent; True if a live hold was dropped."""
        return self._release(reservation_id, self._now())

    def purge(self, older_than: timedelta = timedelta(days=7)) -> int:
        """Forget reservations whose lease ended more than ``older_than`` ago.

        The ledger keeps every reservation id so that a settlement is counted once,
        however late it comes; this bounds that memory. Spend already recorded is kept.
        A settlement arriving after its reservation was purged is dropped (and logged),
        so keep ``older_than`` far longer than any call. Returns how many were purged.
        """
        if older_than < timedelta(0):
            raise ValueError("older_than must be >= 0")
        return self._purge(self._now() - older_than)

    def replay_journal(self) -> int:
        """Write the journaled settlements now; returns how many were written.

        Raises:
            LedgerUnavailableError: The ledger still cannot answer (the rest stay).
        """
        return self._replay()

    def close(self) -> None:
        """Release connections and files."""
        self.journal.close()

    def __enter__(self) -> BudgetLedger:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- helpers ----------------------------------------------------------------------

    def _now(self) -> datetime:
        now = self.clock()
        if now.tzinfo is None:
            raise ValueError(f"the ledger clock returned a naive datetime {now!r}; use UTC")
        return now

    def _replay(self) -> int:
        if not len(self.journal):
            return 0
        written = 0
        for entry in self.journal.pending():
            try:
                self._settle(entry.lease_id, entry.cost, entry.tokens, self._now())
            except KeyError:
                logger.error("journaled settlement %s names no reservation: dropped", entry)
            self.journal.remove(entry.lease_id)
            written += 1
        if written:
            logger.info("replayed %d journaled settlement(s)", written)
        return written

    # -- storage: one transaction each ---------------------------------------------

    @abstractmethod
    def _set_limit(self, limit: ScopeLimit, now: datetime) -> None: ...

    @abstractmethod
    def _status(self, scope: str, now: datetime) -> ScopeStatus: ...

    @abstractmethod
    def _list_scopes(self) -> Iterable[str]: ...

    @abstractmethod
    def _reserve(self, lease: Lease, now: datetime) -> Lease: ...

    @abstractmethod
    def _renew(self, lease_id: str, now: datetime, expires: datetime) -> bool: ...

    @abstractmethod
    def _settle(self, lease_id: str, cost: Decimal, tokens: int, now: datetime) -> Written:
        """``settled`` (or ``corrected``, over a charge) now, ``duplicate`` if already
        settled; KeyError if unknown. On a charged lease, spend moves by real - hold."""

    @abstractmethod
    def _charge_held(self, holder: str, now: datetime) -> int:
        """Settle ``holder``'s ``held`` leases at their hold, state ``charged``; how many."""

    @abstractmethod
    def _release(self, lease_id: str, now: datetime) -> bool: ...

    @abstractmethod
    def _purge(self, before: datetime) -> int: ...


def _check_holder(holder: object) -> None:
    if not isinstance(holder, str) or not holder:
        raise ValueError(f"a lease holder is a non-empty string (a run id), got {holder!r}")
