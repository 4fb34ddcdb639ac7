"""Budgets shared across runs, processes and machines: the budget ledger.

- :class:`BudgetLedger` is the interface: named scopes with limits and windows,
  all-or-nothing reservations held as expiring leases, idempotent settlements, and
  ``charge_held(holder)``, which charges a holder known dead at what it held.
- :class:`InMemoryLedger` (one process), :class:`SQLiteLedger` (processes sharing a
  file) and :class:`PostgresLedger` (replicas sharing a PostgreSQL database; needs the
  ``postgres`` extra) implement it.
- :func:`open_ledger` opens one from a URL (``memory://``, ``sqlite:///path``,
  ``postgresql://...``).
- :class:`LedgerGate` is what a budget enforcer calls around each model call.
"""

from langchain_runtime.cost.ledger._base import DEFAULT_LEASE_TTL, BudgetLedger, SettleOutcome
from langchain_runtime.cost.ledger._journal import JournalEntry, SettleJournal
from langchain_runtime.cost.ledger._memory import InMemoryLedger
from langchain_runtime.cost.ledger._model import Lease, ScopeLimit, ScopeStatus, Window
from langchain_runtime.cost.ledger._open import open_ledger
from langchain_runtime.cost.ledger._postgres import PostgresLedger
from langchain_runtime.cost.ledger._sqlite import SQLiteLedger
from langchain_runtime.cost.ledger.gate import LedgerGate

__all__ = [
    "DEFAULT_LEASE_TTL",
    "BudgetLedger",
    "InMemoryLedger",
    "JournalEntry",
    "Lease",
    "LedgerGate",
    "PostgresLedger",
    "SQLiteLedger",
    "ScopeLimit",
    "ScopeStatus",
    "SettleJournal",
    "SettleOutcome",
    "Window",
    "open_ledger",
]
