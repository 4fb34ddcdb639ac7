"""Budget decisions as events that observers (tracing, metrics) can listen to.

The budget handler calls :func:`reserved`, :func:`refused` and :func:`settled` at
its three decision points; each is a no-op costing one truthiness check while
nobody listens. Listeners are held weakly when they are bound methods (a
forgotten tracing handler does not stay alive through this registry), and a
listener that raises is logged, never allowed to break a model call.

Example:
    >>> from decimal import Decimal
    >>> seen = []
    >>> remove = add_budget_listener(seen.append)
    >>> emit(BudgetEvent("settled", "call-1", model="gpt-4o-mini", amount=Decimal("0.01")))
    >>> remove()
    >>> [(e.kind, e.call_id, e.amount) for e in seen]
    [('settled', 'call-1', Decimal('0.01'))]
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

__all__ = [
    "BudgetEvent",
    "BudgetEventKind",
    "BudgetListener",
    "add_budget_listener",
    "emit",
    "refused",
    "reserved",
    "settled",
]

logger = logging.getLogger(__name__)

BudgetEventKind = Literal["reserved", "refused", "settled"]


@dataclass(frozen=True)
class BudgetEvent:
    """One budget decision about one model call.

    Attributes:
        kind: ``reserved`` (budget held before sending), ``refused`` (the call was
            stopped before sending) or ``settled`` (the hold replaced by real usage).
        call_id: The LangChain run id of the model call (as text).
        model: The model priced, when known.
        task_id: The orchestrator task the call belongs to, when any.
        amount: Money reserved (``reserved``), needed (``refused``) or charged
            (``settled``); None when the model has no price.
        currency: The currency of ``amount``, ``limit`` and ``spent``.
        input_tokens: Input tokens held or charged.
        output_tokens: Output tokens held (the call's limit) or charged.
        limit: The limit that refused the call (money or tokens).
        spent: What that limit had already committed when it refused.
        message: The refusal's message.
        error: The refusal itself (a ``BudgetExceededError``).
    """

    kind: BudgetEventKind
    call_id: str
    model: str | None = None
    task_id: str | None = None
    amount: Decimal | None = None
    currency: str = "USD"
    input_tokens: int | None = None
    output_tokens: int | None = None
    limit: Decimal | int | None = None
    spent: Decimal | int | None = None
    message: str | None = None
    error: BaseException | None = field(default=None, compare=False, repr=False)


BudgetListener = Callable[[BudgetEvent], None]

_lock = threading.Lock()
# Each entry returns the live listener, or None once a weakly held one is gone.
_listeners: tuple[Callable[[], BudgetListener | None], ...] = ()


def add_budget_listener(listener: BudgetListener) -> Callable[[], None]:
    """Call ``listener`` with every budget event; returns a function that removes it.

    A bound method is held weakly (it goes away with its object); anything else is
    held strongly until removed.
    """
    global _listeners
    ref: Callable[[], BudgetListener | None]
    if hasattr(listener, "__self__") and hasattr(listener, "__func__"):
        ref = weakref.WeakMethod(listener)
    else:

        def ref() -> BudgetListener | None:
            return listener

    with _lock:
        _listeners = (*_listeners, ref)

    def remove() -> None:
        global _listeners
        with _lock:
            _listeners = tuple(r for r in _listeners if r is not ref)

    return remove


def emit(event: BudgetEvent) -> None:
    """Deliver ``event`` to every listener (errors are logged, not raised)."""
    global _listeners
    dead = False
    for ref in _listeners:
        listener = ref()
        if listener is None:
            dead = True
            continue
        try:
            listener(event)
        except Exception:
            logger.exception("budget event listener failed on %s", event.kind)
    if dead:
        with _lock:
            _listeners = tuple(r for r in _listeners if r() is not None)


def _key(call_id: str | UUID) -> str:
    return str(call_id)


def reserved(call_id: str | UUID, reservation: Any, currency: str = "USD") -> None:
    """The budget held ``reservation`` (a ``cost.budget.Reservation``) for a call."""
    if not _listeners:
        return
    emit(
        BudgetEvent(
            "reserved",
            _key(call_id),
            model=getattr(reservation, "model", None),
            task_id=getattr(reservation, "task_id", None),
            amount=getattr(reservation, "cost", None),
            currency=currency,
            input_tokens=getattr(reservation, "input_tokens", None),
            output_tokens=getattr(reservation, "output_tokens", None),
        )
    )


def refused(
    call_id: str | UUID,
    error: BaseException,
    *,
    model: str | None = None,
    task_id: str | None = None,
    currency: str = "USD",
) -> None:
    """The budget refused a call with ``error`` (a ``BudgetExceededError``)."""
    if not _listeners:
        return
    emit(
        BudgetEvent(
            "refused",
            _key(call_id),
            model=model,
            task_id=task_id or getattr(error, "task_id", None),
            currency=currency,
            limit=getattr(error, "limit", None),
            spent=getattr(error, "spent", None),
            message=str(error),
            error=error,
        )
    )


def settled(
    call_id: str | UUID,
    usage: Any,
    cost: Any,
    *,
    model: str | None = None,
    task_id: str | None = None,
) -> None:
    """A call was charged ``cost`` (a ``Cost``) for ``usage`` (a ``Usage``)."""
    if not _listeners:
        return
    emit(
        BudgetEvent(
            "settled",
            _key(call_id),
            model=model,
            task_id=task_id,
            amount=getattr(cost, "amount", None),
            currency=getattr(cost, "currency", "USD"),
            input_tokens=getattr(usage, "input_tokens", None),
            output_tokens=getattr(usage, "output_tokens", None),
        )
    )
