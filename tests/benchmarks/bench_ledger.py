"""Latency of one reservation + settlement on each ledger backend, against memory.

Run it from the repository root::

    .venv/bin/python tests/benchmarks/bench_ledger.py [--calls N] [--repeat N] [--scopes N]

What is measured: wall time of ``reserve(scopes, cost=..., tokens=...)`` followed by
``settle(id, cost=..., tokens=...)`` for one call in ``--scopes`` scopes (a team scope
with a limit and per-user scopes), one call after another from one thread, on:

* **InMemoryLedger** (the baseline);
* **SQLiteLedger** on a file in a temp folder (WAL, ``synchronous=FULL``, the
  default), and with ``durable=False`` (``synchronous=NORMAL``);
* **PostgresLedger** on a PostgreSQL server this script starts on a unix socket
  (``tests/postgres_server.py``: fsync off, as in the tests; a production server with
  fsync on pays its disk's flush time on every commit).

Method: ``--repeat`` rounds; in each, every backend runs ``--calls`` pairs, backends
interleaved (order rotated per round) so they share machine noise. Reported: p50 and
p99 of the per-pair latencies of all rounds, and the ratio of each p50/p99 to the
in-memory one. The exit code is always 0: this is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from langchain_runtime.cost.ledger import (
    BudgetLedger,
    InMemoryLedger,
    PostgresLedger,
    SQLiteLedger,
)
from tests.postgres_server import PostgresServer


def _pairs(ledger: BudgetLedger, scopes: list[str], calls: int, out: list[float]) -> None:
    cost = Decimal("0.000123")
    for _ in range(calls):
        started = time.perf_counter()
        lease = ledger.reserve(scopes, cost=cost, tokens=500)
        ledger.settle(lease.id, cost=cost, tokens=450)
        out.append(time.perf_counter() - started)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--scopes", type=int, default=2)
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="bench-ledger-"))
    server = PostgresServer()
    server.start()
    try:
        ledgers: dict[str, BudgetLedger] = {
            "InMemoryLedger": InMemoryLedger(),
            "SQLiteLedger": SQLiteLedger(folder / "ledger.db"),
            "SQLite NORMAL": SQLiteLedger(folder / "fast.db", durable=False),
            "PostgresLedger": PostgresLedger(server.create_database()),
        }
        scopes = ["team:bench", *(f"user:{i}" for i in range(args.scopes - 1))]
        for ledger in ledgers.values():
            ledger.set_limit("team:bench", max_cost="1000000")
            _pairs(ledger, scopes, 20, [])  # warm up: connections, schema, caches
        samples: dict[str, list[float]] = {name: [] for name in ledgers}
        names = list(ledgers)
        for round_no in range(args.repeat):
            order = names[round_no % len(names) :] + names[: round_no % len(names)]
            for name in order:
                _pairs(ledgers[name], scopes, args.calls, samples[name])
        base50 = _pct(samples["InMemoryLedger"], 0.50)
        base99 = _pct(samples["InMemoryLedger"], 0.99)
        print(
            f"reserve+settle, {args.scopes} scopes, {args.calls} calls x {args.repeat} rounds "
            f"(python {sys.version.split()[0]})"
        )
        print(f"{'backend':<16}{'p50 µs':>10}{'p99 µs':>10}{'x mem p50':>11}{'x mem p99':>11}")
        for name in names:
            p50, p99 = _pct(samples[name], 0.50), _pct(samples[name], 0.99)
            print(
                f"{name:<16}{p50 * 1e6:>10.0f}{p99 * 1e6:>10.0f}"
                f"{p50 / base50:>11.1f}{p99 / base99:>11.1f}"
            )
        mean = statistics.mean(samples["PostgresLedger"])
        print(f"PostgresLedger mean {mean * 1e6:.0f} µs ({1 / mean:.0f} calls/s from one thread)")
        for ledger in ledgers.values():
            ledger.close()
    finally:
        server.destroy()


if __name__ == "__main__":
    main()
