"""Hard budgets: reserve before a model call, settle after it, under one lock."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING
from uuid import UUID

from langchain_runtime.cost._budget_rules import Held, check_fits, ledger_gate
from langchain_runtime.cost.catalog import ModelCatalog
from langchain_runtime.cost.pricing import CacheWriteTTL, CostCalculator
from langchain_runtime.cost.tracking import UsageTracker, call_key
from langchain_runtime.domain import Budget, Cost, Usage
from langchain_runtime.errors import BudgetExceededError, ConfigurationError

if TYPE_CHECKING:
    from langchain_runtime.cost.ledger import LedgerGate

#: What a ledger can still give: the least money and tokens left in any scope.
Headroom = tuple[Decimal | None, int | None]

__all__ = ["BudgetEnforcer", "Reservation", "ledger_gate"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reservation:
    """Budget held for one model call between its start and its end."""

    call_id: str
    model: str | None
    task_id: str | None
    input_tokens: int
    output_tokens: int
    #: Estimated cost; zero when the model has no price and no cost limit applies.
    cost: Decimal

    @property
    def tokens(self) -> int:
        """Input plus output tokens held."""
        return self.input_tokens + self.output_tokens


class BudgetEnforcer:
    """Reserve-then-settle enforcement of a :class:`~langchain_runtime.domain.Budget`.

    Before a model call, :meth:`reserve` holds its estimated cost and tokens (input
    counted on the real messages, output at the call's ``max_tokens``); the call is
    refused with :class:`BudgetExceededError` if spent + held + this estimate would
    cross a limit. After the call, :meth:`settle` replaces the reservation with the
    real cost; :meth:`release` drops a reservation whose call never happened. All of
    it happens under one lock, so concurrent calls can never jointly pass a check they
    would fail together. Settled usage is kept in a :class:`UsageTracker` (one record
    per call id).

    A budget overrun by a call's real usage (``max_tokens`` ignored) refuses all later calls.

    With a ``gate`` (a :class:`~langchain_runtime.cost.ledger.LedgerGate`), every
    reservation is also held in the gate's shared ledger scopes, all or nothing: the
    local budget is one more scope of the same reservation. The ledger is asked
    outside the lock (it may be a database); when it refuses, or cannot answer
    (:class:`~langchain_runtime.errors.LedgerUnavailableError`), the local hold is
    undone and the call is refused before it is sent. Settlements and releases go to
    the ledger; :meth:`reset` leaves it alone (its spend is shared with others).

    Args:
        budget: The overall limits (no limit by default).
        pricing: A :class:`CostCalculator` or a :class:`ModelCatalog` (the bundled
            catalog by default).
        per_task: Limits for each task (one Budget for every task, or a Budget per
            task id), on top of the overall ones.
        tracker: Where settled usage is recorded (a new tracker by default).
        gate: Shared ledger scopes every call also reserves in (none by default).

    Raises:
        ConfigurationError: A cost limit in a currency the catalog does not price in.

    Example:
        >>> from langchain_runtime.domain import Budget, Usage
        >>> enforcer = BudgetEnforcer(Budget(max_cost="0.001"))
        >>> _ = enforcer.reserve("call-1", "gpt-4o-mini", input_tokens=1000, max_output_tokens=500)
        >>> enforcer.settle("call-1", Usage(input_tokens=1000, output_tokens=200)).amount
        Decimal('0.00027')
        >>> enforcer.remaining.amount
        Decimal('0.00073')
    """

    def __init__(
        self,
        budget: Budget | None = None,
        pricing: CostCalculator | ModelCatalog | None = None,
        *,
        per_task: Budget | Mapping[str, Budget] | None = None,
        tracker: UsageTracker | None = None,
        gate: LedgerGate | None = None,
    ) -> None:
        self.budget = budget if budget is not None else Budget()
        self.gate = gate
        if isinstance(pricing, CostCalculator):
            self.calculator = pricing
        else:
            self.calculator = CostCalculator(pricing)
        self.per_task = per_task
        self.tracker = tracker if tracker is not None else UsageTracker()
        currency = self.calculator.catalog.currency
        for b in (self.budget, *self._task_budgets()):
            if b.max_cost is not None and b.currency != currency:
                raise ConfigurationError(
                    f"the budget is in {b.currency} but model prices are in {currency}"
                )
        self._lock = threading.Lock()
        self._reservations: dict[str, Reservation] = {}
        self._held = Held()
        self._task_held: dict[str, Held] = {}
        self._unpriced_warned: set[str] = set()

    def __repr__(self) -> str:
        return f"BudgetEnforcer({self.budget!r}, spent={self.spent}, reserved={self.reserved})"

    def _task_budgets(self) -> list[Budget]:
        if isinstance(self.per_task, Budget):
            return [self.per_task]
        return list(self.per_task.values()) if self.per_task else []

    def task_budget(self, task_id: str | None) -> Budget | None:
        """The per-task limits that apply to ``task_id``, if any."""
        if task_id is None or self.per_task is None:
            return None
        if isinstance(self.per_task, Budget):
            return self.per_task
        return self.per_task.get(task_id)

    # -- pricing ---------------------------------------------------------------------

    def _needs_price(self, task_id: str | None) -> bool:
        task_budget = self.task_budget(task_id)
        # a ledger scope may have a cost limit: never hold $0 for a call it must pay for
        return (
            self.gate is not None
            or self.budget.max_cost is not None
            or (task_budget is not None and task_budget.max_cost is not None)
        )

    def _price(
        self,
        model: str | None,
        input_tokens: int,
        output_tokens: int,
        cache_read_tokens: int = 0,
        cache_creation_tokens: int = 0,
        *,
        required: bool,
        cache_creation_1h_tokens: int = 0,
        cache_write: CacheWriteTTL | None = None,
    ) -> Decimal:
        """Cost of those tokens on ``model``; 0 (with a warning) only if no limit needs it."""
        catalog = self.calculator.catalog
        info = catalog.find(model) if model is not None else None
        if info is None and required:
            if model is not None:
                catalog.get(model)  # raises, naming the model and how to price it
            raise ConfigurationError(
                "A cost budget is set but the model of this call is unknown, so it cannot "
                "be priced. Name the model (with_budget(..., default_model='gpt-4o-mini'), "
                "BudgetCallbackHandler(default_model=...), or the task's model)."
            )
        if info is not None and cache_write is not None:  # all input at that write rate
            return self.calculator.hold_amount(info, input_tokens, output_tokens, cache_write)
        if info is not None:
            return self.calculator.amount(
                info,
                input_tokens,
                output_tokens,
                cache_read_tokens,
                cache_creation_tokens,
                cache_creation_1h_tokens=cache_creation_1h_tokens,
            )
        key = model or "unknown"
        if key not in self._unpriced_warned:
            self._unpriced_warned.add(key)
            logger.warning("no price known for model %r: its calls are counted at $0", key)
        return Decimal(0)

    # -- reserve / settle / release --------------------------------------------------

    def reserve(
        self,
        call_id: str | UUID,
        model: str | None,
        input_tokens: int,
        max_output_tokens: int,
        task_id: str | None = None,
        *,
        cache_write: CacheWriteTTL | None = None,
        placeholder: bool = False,
    ) -> Reservation:
        """Hold budget for a call before it is sent (and in the ledger's scopes).

        Reserving again under a held ``call_id`` replaces that hold. ``cache_write``
        (``"5m"``/``"1h"``: :func:`~langchain_runtime.cost.pricing.cache_write_ttl`)
        holds the input at that cache-write rate; ``placeholder``: see ``LedgerGate.reserve``.

        Raises:
            BudgetExceededError: The call does not fit in what is left, here or in a
                ledger scope (nothing is held).
            LedgerUnavailableError: The ledger cannot answer (nothing is held).
            ConfigurationError: A cost limit applies and ``model`` has no price.
        """
        if input_tokens < 0 or max_output_tokens < 0:
            raise ValueError("token counts must be >= 0")
        required = self._needs_price(task_id)
        cost = self._price(
            model, input_tokens, max_output_tokens, required=required, cache_write=cache_write
        )
        res = Reservation(call_key(call_id), model, task_id, input_tokens, max_output_tokens, cost)
        with self._lock:
            old = self._reservations.pop(res.call_id, None)
            if old is not None:
                self._hold(old, -1)
            check_fits(self.budget, self.tracker.cost_and_tokens(), self._held, res, None)
            task_budget = self.task_budget(task_id)
            if task_budget is not None and task_id is not None:
                held = self._task_held.get(task_id) or Held()
                settled = self.tracker.cost_and_tokens(task_id)
                check_fits(task_budget, settled, held, res, task_id)
            self._reservations[res.call_id] = res
            self._hold(res, 1)
        self._reserve_in_ledger(res, replaced=old is not None, plan=placeholder)
        return res

    def reserve_up_to(
        self,
        call_id: str | UUID,
        model: str | None,
        input_tokens: int,
        max_output_tokens: int,
        task_id: str | None = None,
        *,
        min_output_tokens: int = 1,
        cache_write: CacheWriteTTL | None = None,
    ) -> Reservation:
        """Hold budget for a call with as much output as is still affordable.

        The output reserved is ``max_output_tokens`` or, when that does not fit, the
        most the remaining budget (and the ledger's headroom) can pay for; the call
        must then be sent with that limit (``reservation.output_tokens``). Deciding and
        holding are one locked step; the ledger decides for its scopes (if another
        process took the headroom meanwhile, the call is refused).

        Raises:
            BudgetExceededError: Not even ``min_output_tokens`` fit (nothing is held).
            LedgerUnavailableError: The ledger cannot answer (nothing is held).
            ConfigurationError: A cost limit applies and ``model`` has no price.
        """
        if input_tokens < 0 or max_output_tokens < 0 or min_output_tokens < 0:
            raise ValueError("token counts must be >= 0")
        required = self._needs_price(task_id)
        self._price(model, input_tokens, 0, required=required)  # an unknown price raises here
        key = call_key(call_id)
        headroom = self.gate.headroom() if self.gate is not None else None  # never under the lock
        with self._lock:
            old = self._reservations.pop(key, None)
            if old is not None:
                self._hold(old, -1)
            wanted = max_output_tokens
            affordable = self._affordable_locked(
                model, input_tokens, task_id, headroom, cache_write=cache_write
            )
            if affordable is not None and affordable < wanted:
                wanted = max(affordable, min_output_tokens)
            cost = self._price(
                model, input_tokens, wanted, required=required, cache_write=cache_write
            )
            res = Reservation(key, model, task_id, input_tokens, wanted, cost)
            check_fits(self.budget, self.tracker.cost_and_tokens(), self._held, res, None)
            task_budget = self.task_budget(task_id)
            if task_budget is not None and task_id is not None:
                held = self._task_held.get(task_id) or Held()
                settled = self.tracker.cost_and_tokens(task_id)
                check_fits(task_budget, settled, held, res, task_id)
            self._reservations[key] = res
            self._hold(res, 1)
        self._reserve_in_ledger(res, replaced=old is not None)
        return res

    def _reserve_in_ledger(self, res: Reservation, *, replaced: bool, plan: bool = False) -> None:
        """Hold ``res`` in the ledger's scopes too, or undo the local hold and raise."""
        if self.gate is None:
            return
        try:
            self.gate.reserve(res.call_id, res.cost, res.tokens, placeholder=plan)
        except BaseException as exc:
            with self._lock:
                if self._reservations.get(res.call_id) is res:
                    del self._reservations[res.call_id]
                    self._hold(res, -1)
            if replaced:  # the call's earlier hold is gone here: let it go there too
                self.gate.release(res.call_id)
            if isinstance(exc, BudgetExceededError) and exc.task_id is None:
                exc.task_id = res.task_id
            raise

    def _hold(self, res: Reservation, sign: int) -> None:
        self._held.add(res, sign)
        if res.task_id is not None:
            self._task_held.setdefault(res.task_id, Held()).add(res, sign)

    def settle(
        self,
        call_id: str | UUID,
        usage: Usage,
        *,
        model: str | None = None,
        task_id: str | None = None,
    ) -> Cost:
        """Replace a call's reservation by its real usage; returns its cost.

        ``model`` and ``task_id`` default to the reservation's (or to those of an
        earlier settlement of the same call). Settling the same call
        again replaces the earlier settlement (a call is never counted twice).
        """
        key = call_key(call_id)
        # Model and task come from the reservation, or from an earlier settlement.
        known = self._reservations.get(key) or self.tracker.get(key)
        model = model or (known.model if known else None)
        task_id = task_id or (known.task_id if known else None)
        # The call has happened: price it if we can (warning if not), never refuse it now.
        amount = self._price(
            model,
            usage.input_tokens,
            usage.output_tokens,
            usage.cache_read_tokens,
            usage.cache_creation_tokens,
            required=False,
            cache_creation_1h_tokens=usage.cache_creation_1h_tokens,
        )
        cost = Cost(amount=amount, currency=self.calculator.catalog.currency)
        with self._lock:
            res = self._reservations.pop(key, None)
            if res is not None:
                self._hold(res, -1)
            self.tracker.record(key, usage, cost=cost, model=model, task_id=task_id)
        if res is not None and self.gate is not None:
            # the first settlement of an id counts in the ledger (a replay is a duplicate)
            self.gate.settle(key, cost.amount, usage.total_tokens)
        return cost

    def release(self, call_id: str | UUID) -> bool:
        """Drop a reservation whose call will not happen; True if there was one."""
        key = call_key(call_id)
        with self._lock:
            res = self._reservations.pop(key, None)
            if res is not None:
                self._hold(res, -1)
        if res is not None and self.gate is not None:
            self.gate.release(key)
        return res is not None

    def reservation(self, call_id: str | UUID) -> Reservation | None:
        """The reservation held for ``call_id``, if any."""
        with self._lock:
            return self._reservations.get(call_key(call_id))

    def close(self) -> None:
        """Stop renewing the ledger leases of calls in flight (they then expire)."""
        if self.gate is not None:
            self.gate.close()

    def reset(self) -> None:
        """Forget all spending and reservations (the limits stay).

        The ledger is left alone: its spend is shared, and real.
        """
        with self._lock:
            self._reservations.clear()
            self._held = Held()
            self._task_held.clear()
            self.tracker.reset()

    # -- where we stand --------------------------------------------------------------

    @property
    def spent(self) -> Cost:
        """Cost of settled calls."""
        return self.tracker.cost

    @property
    def usage(self) -> Usage:
        """Usage of settled calls."""
        return self.tracker.usage

    @property
    def reserved(self) -> Cost:
        """Cost held by calls in flight."""
        with self._lock:
            return Cost(amount=self._held.cost, currency=self.calculator.catalog.currency)

    @property
    def in_flight(self) -> int:  # calls holding a reservation
        return len(self._reservations)

    @property
    def reserved_tokens(self) -> int:
        """Tokens held by calls in flight."""
        with self._lock:
            return self._held.tokens

    @property
    def remaining(self) -> Cost | None:
        """Money left for new calls (limit - spent - reserved, at least 0); None if unlimited."""
        if self.budget.max_cost is None:
            return None
        with self._lock:
            left = self.budget.max_cost - self.tracker.cost_and_tokens()[0] - self._held.cost
        return Cost(amount=max(left, Decimal(0)), currency=self.budget.currency)

    @property
    def remaining_tokens(self) -> int | None:
        """Tokens left for new calls (at least 0); None if unlimited."""
        if self.budget.max_tokens is None:
            return None
        with self._lock:
            left = self.budget.max_tokens - self.tracker.cost_and_tokens()[1] - self._held.tokens
        return max(left, 0)

    def affordable_output_tokens(
        self,
        model: str | None,
        input_tokens: int,
        task_id: str | None = None,
        *,
        ledger: bool = True,
        cache_write: CacheWriteTTL | None = None,
    ) -> int | None:
        """Most output tokens a call with ``input_tokens`` input could still pay for.

        None when no limit applies. Use it to clamp a chat model's ``max_tokens``
        (:meth:`reserve_up_to` clamps and holds in one step). With a gate, the
        ledger's headroom clamps it too (``ledger=False``: the local budget only).

        Raises:
            ConfigurationError: A cost limit applies and ``model`` has no price.
            LedgerUnavailableError: The ledger cannot answer.
        """
        headroom = self.gate.headroom() if ledger and self.gate is not None else None
        with self._lock:
            return self._affordable_locked(
                model, input_tokens, task_id, headroom, cache_write=cache_write
            )

    def _affordable_locked(
        self,
        model: str | None,
        input_tokens: int,
        task_id: str | None,
        headroom: Headroom | None = None,
        *,
        cache_write: CacheWriteTTL | None = None,
    ) -> int | None:
        budgets: list[tuple[Budget, str | None]] = [(self.budget, None)]
        task_budget = self.task_budget(task_id)
        if task_budget is not None:
            budgets.append((task_budget, task_id))
        limits: list[int] = []
        for budget, tid in budgets:
            spent_cost, spent_tokens = self.tracker.cost_and_tokens(tid)
            held = (self._task_held.get(tid) or Held()) if tid else self._held
            cost_left = (budget.max_cost or Decimal(0)) - spent_cost - held.cost
            tokens_left = (budget.max_tokens or 0) - spent_tokens - held.tokens
            if budget.max_tokens is not None:
                limits.append(max(tokens_left - input_tokens, 0))
            if budget.max_cost is not None:
                if model is None:
                    self._price(None, 0, 0, required=True)  # raises, naming the problem
                    raise AssertionError("unreachable")
                limits.append(
                    self.calculator.affordable_output_tokens(
                        model, input_tokens, max(cost_left, Decimal(0)), cache_write=cache_write
                    )
                )
        if headroom is not None:
            money, tokens = headroom
            if tokens is not None:
                limits.append(max(tokens - input_tokens, 0))
            if money is not None:
                if model is None:
                    self._price(None, 0, 0, required=True)  # raises, naming the problem
                    raise AssertionError("unreachable")
                limits.append(
                    self.calculator.affordable_output_tokens(
                        model, input_tokens, max(money, Decimal(0)), cache_write=cache_write
                    )
                )
        return min(limits) if limits else None
