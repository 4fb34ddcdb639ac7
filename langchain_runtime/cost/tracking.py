"""Usage and cost totals per run, per task and per model, counting each call once."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from decimal import Decimal
from uuid import UUID

from langchain_runtime.domain import Cost, Usage

__all__ = ["CallRecord", "UsageTotals", "UsageTracker"]

_ZERO = Cost()
_USAGE_FIELDS = (
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cache_read_tokens",
    "cache_creation_tokens",
    "cache_creation_1h_tokens",
    "reasoning_tokens",
)


@dataclass(frozen=True)
class CallRecord:
    """One model call as recorded: its usage, cost, model and task."""

    call_id: str
    usage: Usage
    cost: Cost
    model: str | None = None
    task_id: str | None = None
    #: How many calls this record stands for (a restored task's calls: more than one).
    calls: int = 1


@dataclass(frozen=True)
class UsageTotals:
    """Usage and cost summed over a number of calls."""

    usage: Usage = field(default_factory=Usage)
    cost: Cost = field(default_factory=Cost)
    calls: int = 0


class _Acc:
    """A mutable running total (so replacing a record is a subtraction, not a re-sum)."""

    __slots__ = ("calls", "cost", "counts", "currency", "estimated")

    def __init__(self) -> None:
        self.counts = dict.fromkeys(_USAGE_FIELDS, 0)
        self.cost = Decimal(0)
        self.currency = "USD"
        self.calls = 0
        self.estimated = 0

    def apply(self, record: CallRecord, sign: int) -> None:
        for name in _USAGE_FIELDS:
            self.counts[name] += sign * getattr(record.usage, name)
        self.cost += sign * record.cost.amount
        if record.cost.amount:
            self.currency = record.cost.currency
        self.calls += sign * record.calls
        self.estimated += sign * int(record.usage.estimated)

    def totals(self) -> UsageTotals:
        usage = Usage(**self.counts, estimated=self.estimated > 0)
        return UsageTotals(usage, Cost(amount=self.cost, currency=self.currency), self.calls)


def call_key(call_id: str | UUID) -> str:
    """The tracker's key for a call id (LangChain run ids are UUIDs)."""
    return str(call_id)


class UsageTracker:
    """Thread-safe usage and cost totals, overall and per task and per model.

    Each call is keyed by its id (LangChain's run id): recording the same id again
    replaces the earlier record instead of adding to it, so a call is never counted
    twice. Totals are kept incrementally; reading them is O(1).

    Example:
        >>> from langchain_runtime.domain import Usage
        >>> tracker = UsageTracker()
        >>> tracker.record("run-1", Usage(input_tokens=10, output_tokens=5), task_id="a")
        True
        >>> tracker.record("run-1", Usage(input_tokens=10, output_tokens=7), task_id="a")
        False
        >>> tracker.usage.output_tokens, tracker.calls
        (7, 1)
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: dict[str, CallRecord] = {}
        self._total = _Acc()
        self._by_task: dict[str, _Acc] = {}
        self._by_model: dict[str, _Acc] = {}
        self._by_task_model: dict[str, dict[str, _Acc]] = {}

    def record(
        self,
        call_id: str | UUID,
        usage: Usage,
        *,
        cost: Cost | None = None,
        model: str | None = None,
        task_id: str | None = None,
        calls: int = 1,
    ) -> bool:
        """Record a call's usage; True if the call is new, False if it replaced one.

        ``calls`` > 1 records several calls at once (a restored task's, per model).
        """
        rec = CallRecord(call_key(call_id), usage, cost or _ZERO, model, task_id, calls)
        with self._lock:
            old = self._records.get(rec.call_id)
            if old is not None:
                self._apply(old, -1)
            self._records[rec.call_id] = rec
            self._apply(rec, 1)
            return old is None

    def _apply(self, rec: CallRecord, sign: int) -> None:
        self._total.apply(rec, sign)
        if rec.task_id is not None:
            self._by_task.setdefault(rec.task_id, _Acc()).apply(rec, sign)
        model = rec.model or "unknown"
        self._by_model.setdefault(model, _Acc()).apply(rec, sign)
        if rec.task_id is not None:
            per_model = self._by_task_model.setdefault(rec.task_id, {})
            per_model.setdefault(model, _Acc()).apply(rec, sign)

    def get(self, call_id: str | UUID) -> CallRecord | None:
        """The record of one call, if any."""
        with self._lock:
            return self._records.get(call_key(call_id))

    def totals(self) -> UsageTotals:
        """Usage, cost and number of calls over everything recorded."""
        with self._lock:
            return self._total.totals()

    def cost_and_tokens(self, task_id: str | None = None) -> tuple[Decimal, int]:
        """Total cost amount and total tokens, overall or of one task (cheap to read)."""
        with self._lock:
            acc = self._total if task_id is None else self._by_task.get(task_id)
            if acc is None:
                return Decimal(0), 0
            return acc.cost, acc.counts["total_tokens"]

    def has_task(self, task_id: str) -> bool:
        """Whether any call was recorded for ``task_id`` (cheap: no totals built)."""
        return task_id in self._by_task

    def task_totals(self, task_id: str) -> UsageTotals:
        """Totals of one task (zero if it made no call)."""
        with self._lock:
            acc = self._by_task.get(task_id)
            return acc.totals() if acc is not None else UsageTotals()

    @property
    def usage(self) -> Usage:
        """Total usage."""
        return self.totals().usage

    @property
    def cost(self) -> Cost:
        """Total cost."""
        return self.totals().cost

    @property
    def calls(self) -> int:
        """Number of distinct calls recorded."""
        with self._lock:
            return len(self._records)

    def by_task(self) -> dict[str, UsageTotals]:
        """Totals per task id (calls with no task are left out)."""
        with self._lock:
            return {k: v.totals() for k, v in sorted(self._by_task.items()) if v.calls}

    def task_models(self, task_id: str) -> dict[str, UsageTotals]:
        """One task's totals per model name."""
        with self._lock:
            found = self._by_task_model.get(task_id, {})
            return {model: acc.totals() for model, acc in sorted(found.items()) if acc.calls}

    def by_model(self) -> dict[str, UsageTotals]:
        """Totals per model name (``"unknown"`` for calls whose model is unknown)."""
        with self._lock:
            return {k: v.totals() for k, v in sorted(self._by_model.items()) if v.calls}

    def records(self) -> list[CallRecord]:
        """Every record, in the order the calls were first recorded."""
        with self._lock:
            return list(self._records.values())

    def reset(self) -> None:
        """Forget everything."""
        with self._lock:
            self._records.clear()
            self._total = _Acc()
            self._by_task.clear()
            self._by_model.clear()
            self._by_task_model.clear()
