"""The budget enforcer's rules: what is held, whether a call fits, which ledger gate."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import TYPE_CHECKING

from langchain_runtime.domain import Budget
from langchain_runtime.errors import BudgetExceededError, ConfigurationError

if TYPE_CHECKING:
    from langchain_runtime.cost.budget import Reservation
    from langchain_runtime.cost.ledger import LedgerGate

__all__ = ["Held", "check_fits", "ledger_gate", "money"]


class Held:
    """Cost and tokens held by calls in flight (under one budget)."""

    __slots__ = ("cost", "tokens")

    def __init__(self) -> None:
        self.cost = Decimal(0)
        self.tokens = 0

    def add(self, res: Reservation, sign: int) -> None:
        self.cost += sign * res.cost
        self.tokens += sign * res.tokens


def money(amount: Decimal, currency: str) -> str:
    return f"${amount:,.6f}" if currency == "USD" else f"{amount:,.6f} {currency}"


def check_fits(
    budget: Budget,
    settled: tuple[Decimal, int],
    held: Held,
    res: Reservation,
    scope_task: str | None,
) -> None:
    """Raise :class:`BudgetExceededError` if ``res`` does not fit in ``budget``."""
    settled_cost, settled_tokens = settled
    whose = f"task {scope_task!r}'s" if scope_task is not None else "the"
    call = f"a call to {res.model or 'an unknown model'}"
    if budget.max_cost is not None:
        committed = settled_cost + held.cost
        if committed + res.cost > budget.max_cost:
            left = max(budget.max_cost - committed, Decimal(0))
            cur = budget.currency
            raise BudgetExceededError(
                f"Budget exceeded: {call} needs up to {money(res.cost, cur)} "
                f"({res.input_tokens} input + up to {res.output_tokens} output tokens) but "
                f"only {money(left, cur)} of {whose} {money(budget.max_cost, cur)} "
                f"budget is left ({money(settled_cost, cur)} spent, "
                f"{money(held.cost, cur)} reserved by calls in flight)",
                limit=budget.max_cost,
                spent=committed,
                task_id=res.task_id,
            )
    if budget.max_tokens is not None:
        committed_tokens = settled_tokens + held.tokens
        if committed_tokens + res.tokens > budget.max_tokens:
            left_tokens = max(budget.max_tokens - committed_tokens, 0)
            raise BudgetExceededError(
                f"Token budget exceeded: {call} needs up to {res.tokens} tokens "
                f"({res.input_tokens} input + up to {res.output_tokens} output) but only "
                f"{left_tokens} of {whose} {budget.max_tokens}-token budget is left "
                f"({settled_tokens} used, {held.tokens} reserved by calls "
                "in flight)",
                limit=budget.max_tokens,
                spent=committed_tokens,
                task_id=res.task_id,
            )


def ledger_gate(
    ledger: object, scopes: Iterable[str] | str, owner: str, *, holder: str | None = None
) -> LedgerGate | None:
    """The gate for ``ledger`` and ``scopes`` (None without a ledger), checked.

    ``holder`` names who makes the calls (an orchestrator run's id), for
    :meth:`~langchain_runtime.cost.ledger.BudgetLedger.charge_held`.

    Raises:
        ConfigurationError: Scopes without a ledger, a ledger without scopes, a bad
            scope name, or something that is not a ledger. ``owner`` names who got it.
    """
    from langchain_runtime.cost.ledger import BudgetLedger, LedgerGate

    names = (scopes,) if isinstance(scopes, str) else tuple(scopes)
    if ledger is None:
        if names:
            raise ConfigurationError(
                f"{owner}: scopes={list(names)} need a shared ledger to reserve in: pass "
                "ledger=SQLiteLedger('budgets.db') (or InMemoryLedger, PostgresLedger)"
            )
        return None
    if not isinstance(ledger, BudgetLedger):
        raise ConfigurationError(
            f"{owner}: ledger must be a BudgetLedger (InMemoryLedger, SQLiteLedger, "
            f"PostgresLedger), got {type(ledger).__name__}"
        )
    if not names:
        raise ConfigurationError(
            f"{owner}: a ledger needs the scopes its calls reserve in, "
            "e.g. scopes=['team:research']"
        )
    try:
        return LedgerGate(ledger, names, holder=holder)
    except ValueError as exc:
        raise ConfigurationError(f"{owner}: {exc}") from None
