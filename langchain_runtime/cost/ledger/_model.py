"""The ledger's values (limits, leases, status) and the arithmetic every backend shares.

Backends differ only in where rows live; what a scope's window is, how a limit is
checked and what the refusal says are decided here, once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Literal

from langchain_runtime.errors import BudgetExceededError

__all__ = [
    "Clock",
    "Lease",
    "ScopeLimit",
    "ScopeStatus",
    "Window",
    "check_fits",
    "decode_window",
    "encode_window",
    "from_micros",
    "normalize_scopes",
    "to_decimal",
    "to_micros",
    "utc_now",
    "window_start",
]

#: ``None`` (one window for ever), a calendar window in UTC, or a fixed length.
Window = Literal["hour", "day", "week", "month"] | timedelta | None
Clock = Callable[[], datetime]

_CALENDAR = ("hour", "day", "week", "month")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MAX_SCOPE = 200


def utc_now() -> datetime:
    """The wall clock, in UTC (the default clock of every ledger)."""
    return datetime.now(timezone.utc)


def to_micros(moment: datetime) -> int:
    """Microseconds since the Unix epoch: how the SQL backends store instants (exact)."""
    if moment.tzinfo is None:
        raise ValueError(f"a ledger clock must return aware datetimes, got naive {moment!r}")
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(micros: int) -> datetime:
    """The inverse of :func:`to_micros`."""
    return _EPOCH + timedelta(microseconds=micros)


def to_decimal(value: Decimal | int | float | str, what: str) -> Decimal:
    """An exact, finite, non-negative amount of money (a float goes through its repr)."""
    if isinstance(value, bool):
        raise TypeError(f"{what} must be a number, not a bool")
    try:
        amount = value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"{what} must be a number, got {value!r}") from None
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"{what} must be a finite amount >= 0, got {value!r}")
    return amount


def _tokens(value: int | None, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{what} must be an integer >= 0, got {value!r}")
    return value


def normalize_scopes(scopes: Iterable[str] | str) -> tuple[str, ...]:
    """Unique scope names in a fixed (sorted) order: the order rows are locked in."""
    if isinstance(scopes, str):
        scopes = (scopes,)
    names = set()
    for scope in scopes:
        check_scope(scope)
        names.add(scope)
    if not names:
        raise ValueError("a reservation needs at least one scope, e.g. ['team:research']")
    return tuple(sorted(names))


def check_scope(scope: object) -> str:
    """``scope`` if it is a usable scope name, else a ValueError saying why."""
    if not isinstance(scope, str) or not scope.strip():
        raise ValueError(f"a scope is a non-empty string such as 'team:research', got {scope!r}")
    if len(scope) > _MAX_SCOPE or scope != scope.strip():
        raise ValueError(
            f"scope {scope!r} must be at most {_MAX_SCOPE} characters, without outer spaces"
        )
    return scope


def encode_window(window: Window) -> str | None:
    """The stored form of a window: its calendar name or ``"<microseconds>us"``."""
    if window is None:
        return None
    if isinstance(window, timedelta):
        if window <= timedelta(0):
            raise ValueError(f"a window must be longer than zero, got {window!r}")
        return f"{window // timedelta(microseconds=1)}us"
    if window in _CALENDAR:
        return window
    raise ValueError(
        f"window must be None, 'hour', 'day', 'week', 'month' or a timedelta, got {window!r}"
    )


def decode_window(stored: str | None) -> Window:
    """The inverse of :func:`encode_window`."""
    if stored is None:
        return None
    if stored.endswith("us"):
        return timedelta(microseconds=int(stored[:-2]))
    if stored in _CALENDAR:
        return stored  # type: ignore[return-value]
    raise ValueError(f"unknown stored window {stored!r}")


def window_start(window: Window, now: datetime) -> datetime | None:
    """The start of the window ``now`` falls in (UTC); None when the scope has none.

    Calendar windows start on the hour, at midnight, on Monday at midnight, or on
    the first of the month, all in UTC; a ``timedelta`` window counts from the epoch.

    >>> window_start("month", datetime(2026, 12, 1, 22, 5, tzinfo=timezone.utc))
    datetime.datetime(2026, 12, 1, 0, 0, tzinfo=datetime.timezone.utc)
    """
    if window is None:
        return None
    now = now.astimezone(timezone.utc)
    if isinstance(window, timedelta):
        step = window // timedelta(microseconds=1)
        return from_micros(to_micros(now) // step * step)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if window == "hour":
        return now.replace(minute=0, second=0, microsecond=0)
    if window == "day":
        return day
    if window == "week":
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


@dataclass(frozen=True)
class ScopeLimit:
    """A scope's limits; ``None`` means no limit of that kind."""

    scope: str
    max_cost: Decimal | None = None
    max_tokens: int | None = None
    window: Window = None

    @classmethod
    def build(
        cls,
        scope: str,
        max_cost: Decimal | int | float | str | None,
        max_tokens: int | None,
        window: Window,
    ) -> ScopeLimit:
        """A validated limit (the arguments of ``set_limit``)."""
        check_scope(scope)
        encode_window(window)
        cost = None if max_cost is None else to_decimal(max_cost, "max_cost")
        return cls(scope, cost, _tokens(max_tokens, "max_tokens"), window)

    def window_key(self, now: datetime) -> int:
        """The stored key of the window ``now`` falls in (0 when there is no window)."""
        start = window_start(self.window, now)
        return 0 if start is None else to_micros(start)


@dataclass(frozen=True)
class ScopeStatus:
    """Where a scope stands in its current window.

    Attributes:
        scope: The scope's name.
        max_cost, max_tokens, window: Its limits (None: no limit).
        window_start: When the current window began (None: the scope has no window).
        spent, spent_tokens: Settled spend in the current window.
        reserved, reserved_tokens: Held by live leases (expired ones are not counted).
        remaining, remaining_tokens: What a new reservation could still take (None: no
            limit), never below zero.
    """

    scope: str
    max_cost: Decimal | None
    max_tokens: int | None
    window: Window
    window_start: datetime | None
    spent: Decimal
    spent_tokens: int
    reserved: Decimal
    reserved_tokens: int

    @property
    def remaining(self) -> Decimal | None:
        """Money left for new reservations (None when there is no cost limit)."""
        if self.max_cost is None:
            return None
        return max(self.max_cost - self.spent - self.reserved, Decimal(0))

    @property
    def remaining_tokens(self) -> int | None:
        """Tokens left for new reservations (None when there is no token limit)."""
        if self.max_tokens is None:
            return None
        return max(self.max_tokens - self.spent_tokens - self.reserved_tokens, 0)


@dataclass(frozen=True)
class Lease:
    """A reservation held in every one of its scopes until it is settled or expires.

    Attributes:
        id: The reservation id (settle, renew and release take it).
        scopes: The scopes it holds budget in (sorted).
        cost, tokens: What it holds in each of them.
        expires_at: When its hold lapses unless renewed (UTC).
        holder: Who holds it (e.g. the run that made the call), or None: when that
            holder is known to be dead, :meth:`BudgetLedger.charge_held` charges the
            lease at its hold instead of letting the hold expire and be freed.
    """

    id: str
    scopes: tuple[str, ...]
    cost: Decimal
    tokens: int
    expires_at: datetime
    holder: str | None = None


def _money(amount: Decimal) -> str:
    return f"${amount:,.6f}"


def check_fits(
    limit: ScopeLimit,
    spent: tuple[Decimal, int],
    held: tuple[Decimal, int],
    cost: Decimal,
    tokens: int,
) -> None:
    """Raise :class:`BudgetExceededError` if ``cost``/``tokens`` do not fit in ``limit``."""
    spent_cost, spent_tokens = spent
    held_cost, held_tokens = held
    if limit.max_cost is not None and spent_cost + held_cost + cost > limit.max_cost:
        left = max(limit.max_cost - spent_cost - held_cost, Decimal(0))
        raise BudgetExceededError(
            f"Budget exceeded in scope {limit.scope!r}: a call needs up to {_money(cost)} but "
            f"only {_money(left)} of its {_money(limit.max_cost)} budget is left "
            f"({_money(spent_cost)} spent, {_money(held_cost)} reserved by calls in flight)",
            limit=limit.max_cost,
            spent=spent_cost + held_cost,
        )
    if limit.max_tokens is not None and spent_tokens + held_tokens + tokens > limit.max_tokens:
        left_tokens = max(limit.max_tokens - spent_tokens - held_tokens, 0)
        raise BudgetExceededError(
            f"Token budget exceeded in scope {limit.scope!r}: a call needs up to {tokens} tokens "
            f"but only {left_tokens} of its {limit.max_tokens}-token budget is left "
            f"({spent_tokens} used, {held_tokens} reserved by calls in flight)",
            limit=limit.max_tokens,
            spent=spent_tokens + held_tokens,
        )
