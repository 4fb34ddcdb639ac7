"""A ledger in this process's memory: for tests, notebooks and a single process."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

from langchain_runtime.cost.ledger._base import DEFAULT_LEASE_TTL, BudgetLedger, Written
from langchain_runtime.cost.ledger._journal import SettleJournal
from langchain_runtime.cost.ledger._model import (
    Clock,
    Lease,
    ScopeLimit,
    ScopeStatus,
    check_fits,
    from_micros,
)

__all__ = ["InMemoryLedger"]


@dataclass
class _Held:
    lease: Lease
    #: scope -> the window key the hold (and later its spend) belongs to
    windows: dict[str, int]
    #: held, released, charged (at its hold, by charge_held) or settled
    state: str = "held"
    expires_at: datetime = field(init=False)

    def __post_init__(self) -> None:
        self.expires_at = self.lease.expires_at

    def live(self, now: datetime) -> bool:
        return self.state == "held" and self.expires_at > now


class InMemoryLedger(BudgetLedger):
    """A :class:`BudgetLedger` in memory, shared by the threads of one process.

    Example:
        >>> ledger = InMemoryLedger()
        >>> _ = ledger.set_limit("team:research", max_cost="1.00", window="day")
        >>> lease = ledger.reserve(["team:research", "user:42"], cost="0.30")
        >>> ledger.settle(lease.id, cost="0.25")
        'settled'
        >>> ledger.status("team:research").remaining
        Decimal('0.75')
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
        super().__init__(
            clock=clock,
            lease_ttl=lease_ttl,
            journal=journal,
            settle_attempts=settle_attempts,
            retry_delay=retry_delay,
        )
        self._lock = threading.Lock()
        self._limits: dict[str, ScopeLimit] = {}
        self._spend: dict[tuple[str, int], tuple[Decimal, int]] = {}
        self._leases: dict[str, _Held] = {}
        #: ids of leases that may still hold budget (expired ones leave on the next look)
        self._active: set[str] = set()
        #: holder -> ids of its leases (for charge_held)
        self._by_holder: dict[str, set[str]] = {}

    def __repr__(self) -> str:
        return f"InMemoryLedger(scopes={len(self._limits)}, leases={len(self._leases)})"

    def _limit(self, scope: str) -> ScopeLimit:
        return self._limits.get(scope) or ScopeLimit(scope)

    def _held(self, scope: str, key: int, now: datetime) -> tuple[Decimal, int]:
        cost, tokens = Decimal(0), 0
        for lease_id in list(self._active):
            held = self._leases[lease_id]
            if not held.live(now):
                self._active.discard(lease_id)
            elif held.windows.get(scope) == key:
                cost += held.lease.cost
                tokens += held.lease.tokens
        return cost, tokens

    def _set_limit(self, limit: ScopeLimit, now: datetime) -> None:
        with self._lock:
            self._limits[limit.scope] = limit

    def _status(self, scope: str, now: datetime) -> ScopeStatus:
        with self._lock:
            limit = self._limit(scope)
            key = limit.window_key(now)
            spent = self._spend.get((scope, key), (Decimal(0), 0))
            held = self._held(scope, key, now)
        return ScopeStatus(
            scope,
            limit.max_cost,
            limit.max_tokens,
            limit.window,
            from_micros(key) if limit.window is not None else None,
            spent[0],
            spent[1],
            held[0],
            held[1],
        )

    def _list_scopes(self) -> Iterable[str]:
        with self._lock:
            return set(self._limits) | {scope for scope, _ in self._spend}

    def _reserve(self, lease: Lease, now: datetime) -> Lease:
        with self._lock:
            old = self._leases.get(lease.id)
            if old is not None and old.state != "held":
                raise ValueError(f"reservation id {lease.id!r} was already {old.state}")
            if old is not None:
                old.state = "replaced"
            try:
                windows = {}
                for scope in lease.scopes:
                    limit = self._limit(scope)
                    key = limit.window_key(now)
                    spent = self._spend.get((scope, key), (Decimal(0), 0))
                    check_fits(limit, spent, self._held(scope, key, now), lease.cost, lease.tokens)
                    windows[scope] = key
            finally:
                if old is not None:
                    old.state = "held"
                    self._active.add(old.lease.id)
            if old is not None and old.lease.holder is not None:
                self._by_holder.get(old.lease.holder, set()).discard(lease.id)
            self._leases[lease.id] = _Held(lease, windows)
            self._active.add(lease.id)
            if lease.holder is not None:
                self._by_holder.setdefault(lease.holder, set()).add(lease.id)
            for scope, key in windows.items():
                self._spend.setdefault((scope, key), (Decimal(0), 0))
        return lease

    def _renew(self, lease_id: str, now: datetime, expires: datetime) -> bool:
        with self._lock:
            held = self._leases.get(lease_id)
            if held is None or not held.live(now):
                return False
            held.expires_at = expires
            return True

    def _settle(self, lease_id: str, cost: Decimal, tokens: int, now: datetime) -> Written:
        with self._lock:
            held = self._leases.get(lease_id)
            if held is None:
                raise KeyError(f"no reservation {lease_id!r} in this ledger")
            if held.state == "settled":
                return "duplicate"
            charged = held.state == "charged"
            if charged:  # the real cost replaces the charge at the hold
                cost -= held.lease.cost
                tokens -= held.lease.tokens
            held.state = "settled"
            self._active.discard(lease_id)
            self._add_spend(held.windows, cost, tokens)
            return "corrected" if charged else "settled"

    def _charge_held(self, holder: str, now: datetime) -> int:
        with self._lock:
            charged = 0
            for lease_id in sorted(self._by_holder.get(holder, ())):
                held = self._leases[lease_id]
                if held.state != "held":
                    continue
                held.state = "charged"
                self._active.discard(lease_id)
                self._add_spend(held.windows, held.lease.cost, held.lease.tokens)
                charged += 1
            return charged

    def _add_spend(self, windows: dict[str, int], cost: Decimal, tokens: int) -> None:
        for scope, key in windows.items():
            spent_cost, spent_tokens = self._spend.get((scope, key), (Decimal(0), 0))
            self._spend[(scope, key)] = (spent_cost + cost, spent_tokens + tokens)

    def _release(self, lease_id: str, now: datetime) -> bool:
        with self._lock:
            held = self._leases.get(lease_id)
            if held is None or held.state != "held":
                return False
            was_live = held.live(now)
            held.state = "released"
            self._active.discard(lease_id)
            return was_live

    def _purge(self, before: datetime) -> int:
        with self._lock:
            old = [key for key, held in self._leases.items() if held.expires_at < before]
            for key in old:
                holder = self._leases.pop(key).lease.holder
                self._active.discard(key)
                if holder is not None:
                    ids = self._by_holder.get(holder, set())
                    ids.discard(key)
                    if not ids:
                        self._by_holder.pop(holder, None)
            return len(old)
