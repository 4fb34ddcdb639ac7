"""One process of the multi-process ledger test: reserve, "call the provider", settle.

Run as ``python -m tests.unit.cost.ledger._worker URL INDEX OUT SEED CALLS HANG_AT GO``. It
writes one line per event to OUT, flushed and fsynced before it goes on, so a SIGKILL
leaves an exact record: ``sent ID COST TOKENS`` is written *before* the (mocked)
provider is called, i.e. it is what the provider bills; ``settled ID`` after the ledger
recorded it. When the call numbered HANG_AT is in flight the process writes ``hang``
and waits to be killed. After ``ready`` it waits for the file GO to exist (the start
line that all workers leave from together).
"""

from __future__ import annotations

import os
import random
import sys
import time
from datetime import timedelta
from decimal import Decimal

from langchain_runtime.cost.ledger import LedgerGate, open_ledger
from langchain_runtime.errors import BudgetExceededError

TEAM = "team:shared"
COSTS = ("0.010", "0.013", "0.021", "0.034")
LEASE_TTL = timedelta(minutes=10)


def main(url: str, index: int, out_path: str, seed: int, calls: int, hang_at: int, go: str) -> None:
    rng = random.Random(seed * 1000 + index)
    ledger = open_ledger(url, lease_ttl=LEASE_TTL)
    gate = LedgerGate(ledger, [TEAM, f"proc:{index}"], renew_every=None)
    with open(out_path, "a", encoding="utf-8") as out:

        def log(line: str) -> None:
            out.write(line + "\n")
            out.flush()
            os.fsync(out.fileno())

        log("ready")
        deadline = time.monotonic() + 120
        while not os.path.exists(go):
            if time.monotonic() > deadline:
                raise SystemExit("never told to go")
            time.sleep(0.005)
        for n in range(calls):
            cost = Decimal(rng.choice(COSTS))
            tokens = int(cost * 10_000)
            call_id = f"p{index}-s{seed}-c{n}"
            try:
                gate.reserve(call_id, cost=cost, tokens=tokens)
            except BudgetExceededError:
                log(f"refused {call_id}")
                continue
            log(f"sent {call_id} {cost} {tokens}")  # from here on the provider bills it
            if n == hang_at:
                log("hang")
                time.sleep(600)  # killed here, mid-call
            time.sleep(rng.random() * 0.01)
            # the mocked provider answers at the full allowed length: real cost = worst case
            outcome = gate.settle(call_id, cost=cost, tokens=tokens)
            log(f"settled {call_id} {outcome}")
        log("done")
    ledger.close()


if __name__ == "__main__":
    url, index, out_path, seed, calls, hang_at, go = sys.argv[1:8]
    main(url, int(index), out_path, int(seed), int(calls), int(hang_at), go)
