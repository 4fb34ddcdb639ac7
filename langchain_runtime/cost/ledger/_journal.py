"""Settlements that could not be written to the ledger, kept until it is back.

A call that has been sent has been paid for: its spend must reach the ledger even when
the ledger is down at the moment the call ends. :class:`SettleJournal` keeps those
settlements in a small SQLite file (or in memory for the life of the process) and the
ledger replays them, idempotently, once it answers again.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

__all__ = ["JournalEntry", "SettleJournal"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pending_settles (
    lease_id TEXT PRIMARY KEY,
    cost TEXT NOT NULL,
    tokens INTEGER NOT NULL,
    seq INTEGER NOT NULL
)
"""


@dataclass(frozen=True)
class JournalEntry:
    """One settlement waiting to be written to the ledger."""

    lease_id: str
    cost: Decimal
    tokens: int


class SettleJournal:
    """Settlements waiting for the ledger, in the order they happened.

    Args:
        path: A SQLite file (survives the process: a restarted process replays what
            its predecessor could not write), or None to keep entries in memory.

    Example:
        >>> from decimal import Decimal
        >>> journal = SettleJournal()
        >>> journal.add("call-1", Decimal("0.02"), 120)
        >>> [(e.lease_id, e.cost) for e in journal.pending()]
        [('call-1', Decimal('0.02'))]
        >>> journal.remove("call-1"); len(journal)
        0
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = None if path is None else Path(path)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            ":memory:" if self.path is None else str(self.path),
            timeout=10.0,
            isolation_level=None,
            check_same_thread=False,
        )
        self._db.execute(_SCHEMA)
        self._count = self._db.execute("SELECT COUNT(*) FROM pending_settles").fetchone()[0]

    def __repr__(self) -> str:
        where = "memory" if self.path is None else str(self.path)
        return f"SettleJournal({where}, pending={self._count})"

    def __len__(self) -> int:
        return int(self._count)

    def add(self, lease_id: str, cost: Decimal, tokens: int) -> None:
        """Keep a settlement (a newer one for the same lease replaces the older)."""
        with self._lock:
            self._db.execute(
                "INSERT INTO pending_settles (lease_id, cost, tokens, seq) VALUES (?, ?, ?, "
                "(SELECT COALESCE(MAX(seq), 0) + 1 FROM pending_settles)) "
                "ON CONFLICT (lease_id) DO UPDATE SET cost = excluded.cost, "
                "tokens = excluded.tokens",
                (lease_id, str(cost), tokens),
            )
            self._recount()

    def pending(self) -> list[JournalEntry]:
        """The settlements not yet written, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT lease_id, cost, tokens FROM pending_settles ORDER BY seq"
            ).fetchall()
        return [JournalEntry(r[0], Decimal(r[1]), int(r[2])) for r in rows]

    def remove(self, lease_id: str) -> None:
        """Forget a settlement once the ledger has it."""
        with self._lock:
            self._db.execute("DELETE FROM pending_settles WHERE lease_id = ?", (lease_id,))
            self._recount()

    def _recount(self) -> None:
        self._count = self._db.execute("SELECT COUNT(*) FROM pending_settles").fetchone()[0]

    def close(self) -> None:
        """Close the journal file."""
        with self._lock:
            self._db.close()
