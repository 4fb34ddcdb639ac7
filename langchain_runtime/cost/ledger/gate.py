"""What a budget enforcer calls around each model call to hold budget in a ledger.

:class:`LedgerGate` binds a :class:`BudgetLedger` to the scopes of one run, wrapper
or agent. It reserves under the call's own id, renews the leases of calls still in
flight in a background thread, and never lets a ledger problem escape from
``settle`` or ``release`` (the call has happened, or will not: there is nothing for
the caller to do but carry on).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from datetime import timedelta
from decimal import Decimal
from types import TracebackType

from langchain_runtime.cost.ledger._base import BudgetLedger, SettleOutcome
from langchain_runtime.cost.ledger._model import Lease, normalize_scopes
from langchain_runtime.errors import BudgetExceededError, LedgerUnavailableError

__all__ = ["LedgerGate"]

logger = logging.getLogger(__name__)


class LedgerGate:
    """A ledger's reserve/settle/release for the calls of one budget, by call id.

    Args:
        ledger: The shared ledger.
        scopes: The scopes every call made through this gate reserves in.
        holder: Who makes the calls (an orchestrator run's id): their leases name it,
            so :meth:`BudgetLedger.charge_held` can charge them at their hold once
            the holder is known dead. None (``with_budget``, ``BudgetMiddleware``):
            a lease nobody settles only expires.
        lease_ttl: The lease lifetime (the ledger's default otherwise).
        renew_every: How often live leases are renewed (a third of the lifetime by
            default); None turns renewal off.

    Example:
        >>> from langchain_runtime.cost.ledger import InMemoryLedger
        >>> ledger = InMemoryLedger()
        >>> _ = ledger.set_limit("team:research", max_cost="0.10")
        >>> with LedgerGate(ledger, ["team:research"]) as gate:
        ...     _ = gate.reserve("call-1", cost="0.08", tokens=900)
        ...     gate.settle("call-1", cost="0.05", tokens=700)
        'settled'
        >>> ledger.status("team:research").spent
        Decimal('0.05')
    """

    def __init__(
        self,
        ledger: BudgetLedger,
        scopes: Iterable[str],
        *,
        holder: str | None = None,
        lease_ttl: timedelta | None = None,
        renew_every: timedelta | str | None = "auto",
    ) -> None:
        self.ledger = ledger
        self.scopes = normalize_scopes(scopes)
        if holder is not None and (not isinstance(holder, str) or not holder):
            raise ValueError(f"holder must be a non-empty string (a run id), got {holder!r}")
        self.holder = holder
        self.lease_ttl = lease_ttl if lease_ttl is not None else ledger.lease_ttl
        if renew_every == "auto":
            self.renew_every: timedelta | None = self.lease_ttl / 3
        elif renew_every is None or isinstance(renew_every, timedelta):
            self.renew_every = renew_every
        else:
            raise ValueError(f"renew_every must be a timedelta or None, got {renew_every!r}")
        self._lock = threading.Lock()
        # wakes the renewer when the last live lease goes (it then exits) or on close
        self._changed = threading.Condition(self._lock)
        self._live: dict[str, Lease] = {}
        self._closed = False
        self._renewer: threading.Thread | None = None

    def __repr__(self) -> str:
        holder = "" if self.holder is None else f", holder={self.holder!r}"
        return f"LedgerGate({self.ledger!r}, scopes={list(self.scopes)}{holder})"

    def reserve(
        self,
        call_id: str,
        cost: Decimal | int | float | str,
        tokens: int = 0,
        *,
        placeholder: bool = False,
    ) -> Lease:
        """Hold the call's worst case in every scope, before it is sent.

        ``placeholder``: the hold stands in for a call that is not sent while it is
        held (an orchestrator's plan, released before the call reserves for itself),
        so it names no holder: a dead holder owes nothing for it, and it expires.

        Raises:
            BudgetExceededError: It does not fit in one of the scopes.
            LedgerUnavailableError: The ledger cannot answer, or failed: do not send.
        """
        try:
            lease = self.ledger.reserve(
                self.scopes,
                cost=cost,
                tokens=tokens,
                lease_ttl=self.lease_ttl,
                reservation_id=str(call_id),
                holder=None if placeholder else self.holder,
            )
        except BudgetExceededError:
            raise
        except Exception as exc:
            raise LedgerUnavailableError(
                f"budget ledger failed to reserve call {call_id}: {exc!r}; the call was "
                "refused, not sent unmetered"
            ) from exc
        with self._lock:
            self._live[lease.id] = lease
            self._start_renewer_locked()
        return lease

    def settle(
        self, call_id: str, cost: Decimal | int | float | str, tokens: int = 0
    ) -> SettleOutcome | None:
        """Record the call's real cost (journaled if the ledger is down); never raises.

        Returns the ledger's outcome, or None if the settlement could not be recorded
        at all (logged as an error).
        """
        key = str(call_id)
        self._forget(key)
        try:
            return self.ledger.settle(key, cost=cost, tokens=tokens)
        except Exception:
            logger.exception("could not settle call %s in %r", key, self.ledger)
            return None

    def release(self, call_id: str) -> bool:
        """Drop the hold of a call that was not sent; never raises."""
        key = str(call_id)
        self._forget(key)
        try:
            return self.ledger.release(key)
        except Exception as exc:
            # the lease expires on its own: the hold is only kept a little longer
            logger.warning("could not release call %s (its lease will expire): %s", key, exc)
            return False

    def headroom(self) -> tuple[Decimal | None, int | None]:
        """The least money and tokens left in any of the gate's scopes (None: no limit).

        For clamping a call's output limit before reserving (the reservation itself is
        still what decides: another process may take the headroom meanwhile).

        Raises:
            LedgerUnavailableError: The ledger cannot answer.
        """
        money: Decimal | None = None
        tokens: int | None = None
        for scope in self.scopes:
            status = self.ledger.status(scope)
            if status.remaining is not None:
                money = status.remaining if money is None else min(money, status.remaining)
            if status.remaining_tokens is not None:
                left = status.remaining_tokens
                tokens = left if tokens is None else min(tokens, left)
        return money, tokens

    def renew_all(self) -> int:
        """Renew every lease of a call still in flight now; returns how many were renewed."""
        with self._lock:
            ids = list(self._live)
        renewed = 0
        for lease_id in ids:
            try:
                if self.ledger.renew(lease_id, lease_ttl=self.lease_ttl) is not None:
                    renewed += 1
                else:
                    logger.warning(
                        "lease %s is no longer held (it expired, or was charged at its hold "
                        "as its holder was declared dead) and was not renewed",
                        lease_id,
                    )
                    self._forget(lease_id)
            except Exception as exc:  # the renewer thread must outlive a ledger hiccup
                logger.warning("could not renew lease %s: %s", lease_id, exc)
        return renewed

    @property
    def renewing(self) -> bool:
        """Whether the renewer thread is running (only while calls are in flight)."""
        with self._lock:
            return self._renewer is not None

    def _forget(self, lease_id: str) -> None:
        with self._lock:
            self._live.pop(lease_id, None)
            if not self._live:
                self._changed.notify_all()

    def _start_renewer_locked(self) -> None:
        if self.renew_every is None or self._renewer is not None or self._closed:
            return
        self._renewer = threading.Thread(
            target=self._renew_loop, name="ledger-lease-renewer", daemon=True
        )
        self._renewer.start()

    def _renew_loop(self) -> None:
        # Runs only while some call is in flight: it exits as soon as none is (or on
        # close), so a gate nobody closes leaves no thread behind once its calls end.
        assert self.renew_every is not None
        interval = self.renew_every.total_seconds()
        while True:
            with self._lock:
                deadline = time.monotonic() + interval
                while self._live and not self._closed:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._changed.wait(left)
                if self._closed or not self._live:
                    self._renewer = None
                    return
            self.renew_all()

    def close(self) -> None:
        """Stop renewing (leases still live then expire on their own)."""
        with self._lock:
            self._closed = True
            renewer = self._renewer
            self._changed.notify_all()
        if renewer is not None and renewer is not threading.current_thread():
            renewer.join(timeout=5.0)

    def __enter__(self) -> LedgerGate:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
