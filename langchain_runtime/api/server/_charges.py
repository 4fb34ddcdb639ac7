"""Charging the calls a dead run had in flight at their hold, in the server's ledger.

A model call reserves its worst case in the ledger as a lease naming its run
(:meth:`~langchain_runtime.cost.ledger.BudgetLedger.charge_held`). When the process
running it dies mid-call nobody settles it; left alone the lease expires and its hold
is freed for others, although the provider may have billed the call. The server
knows when a run died -- its sweep finds a stopped replica's runs, a single server
restarting marks its unfinished runs interrupted -- and then charges those leases at
their hold instead.

:class:`DeadRunCharges` does that and remembers the runs it could not charge (the
ledger did not answer) to try again at the next sweep; charging is idempotent per
lease, so trying again never counts anything twice.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from langchain_runtime.cost.ledger import BudgetLedger

__all__ = ["DeadRunCharges"]

logger = logging.getLogger(__name__)


class DeadRunCharges:
    """Charges the unsettled leases of dead runs, retrying those the ledger refused.

    Args:
        ledger: The server's ledger (None: nothing to charge).
        holders: The ledger holders of a run's attempts that no process runs any more
            (``run_id#n``, see :func:`~langchain_runtime.orchestration._accounting.
            dead_holders`): a resume already running, here or on another replica,
            holds its own leases and they are left alone.
        on_charged: Called with how many leases a run's charge took (metrics).
    """

    def __init__(
        self,
        ledger: BudgetLedger | None,
        holders: Callable[[str], list[str]],
        on_charged: Callable[[int], object] | None = None,
    ) -> None:
        self.ledger = ledger
        self._holders = holders
        self._on_charged = on_charged
        self._lock = threading.Lock()
        self._pending: set[str] = set()

    @property
    def pending(self) -> frozenset[str]:
        """Runs found dead whose charge the ledger has not taken yet."""
        with self._lock:
            return frozenset(self._pending)

    def charge(self, dead: Iterable[str] = ()) -> int:
        """Charge the runs just found ``dead``, and retry those still pending.

        Never raises: when the ledger cannot answer, that run and those not tried yet
        stay pending (logged). Returns how many leases were charged.
        """
        if self.ledger is None:
            return 0
        with self._lock:
            self._pending.update(dead)
            todo = sorted(self._pending)
        charged = 0
        for run_id in todo:
            try:
                holders = self._holders(run_id)
            except Exception as exc:  # the store is down: ask again next time
                logger.warning("run %s: could not read its attempts: %s", run_id, exc)
                continue
            try:
                count = sum(self.ledger.charge_held(holder) for holder in holders)
            except Exception as exc:
                # the ledger is down: the next sweep tries again (asking it for each
                # of the other runs now would only wait out its timeout once more each)
                logger.warning(
                    "run %s: the calls it had in flight could not be charged at their hold "
                    "(%s); %d run(s) left to charge at the next sweep",
                    run_id,
                    exc,
                    len(self.pending),
                )
                break
            self._forget(run_id)
            charged += count
            if count and self._on_charged is not None:
                self._on_charged(count)
            if count:
                logger.warning(
                    "run %s: %d call(s) in flight when its process stopped charged at their hold",
                    run_id,
                    count,
                )
        return charged

    def _forget(self, run_id: str) -> None:
        with self._lock:
            self._pending.discard(run_id)
