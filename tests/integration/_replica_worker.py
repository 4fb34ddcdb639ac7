"""One replica of a workflow that a test runs, kills and resumes on a shared run store.

``python -m tests.integration._replica_worker KIND DB LOG MODE [HOST]``:

* ``KIND`` ``sqlite`` (``DB`` a file) or ``postgres`` (``DB`` a URL), opened with
  ``stale_after`` from ``$STALE_AFTER`` (seconds, default 120);
* ``MODE`` ``start``: run the chain as run :data:`RUN_ID`; the task ``$BLOCK_AT`` (if
  set) prints ``blocked`` and never ends (the test kills the process there);
  ``resume``: print ``ready``, wait for a line on stdin, resume the run, print
  ``completed`` or the error's class name;
* ``HOST``: the host name this replica reports (a replica on another machine).

Each task appends its id to ``LOG`` (flushed and synced) when it completes, so the test
counts how often each task ran.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

STEPS = 6
RUN_ID = "run-replicas"


def main(argv: list[str]) -> int:
    kind, db, log, mode = argv[:4]
    if len(argv) > 4:  # before langchain_runtime reads the host name
        fake = argv[4]
        socket.gethostname = lambda: fake

    from langchain_runtime import Orchestrator, PostgresRunStore, SQLiteRunStore, Task

    stale = float(os.environ.get("STALE_AFTER", "120"))
    block_at = os.environ.get("BLOCK_AT")
    delay = float(os.environ.get("TASK_DELAY", "0"))
    store = (
        SQLiteRunStore(db, stale_after=stale)
        if kind == "sqlite"
        else PostgresRunStore(db, stale_after=stale)
    )

    def step(tid: str):  # type: ignore[no-untyped-def]
        def run(*_: object) -> str:
            if tid == block_at and mode == "start":
                print("blocked", flush=True)
                while True:
                    time.sleep(60)
            time.sleep(delay)
            with Path(log).open("a") as f:
                f.write(f"{os.getpid()} {tid}\n")
                f.flush()
                os.fsync(f.fileno())
            return f"out of {tid}"

        return run

    tasks = [Task("t0", step("t0"))]
    tasks += [Task(f"t{i}", step(f"t{i}"), deps=[f"t{i - 1}"]) for i in range(1, STEPS)]
    orch = Orchestrator(tasks, store=store)
    if mode == "start":
        config: Any = {"run_id": RUN_ID}  # a name, not a UUID: the store keeps it
        result = orch.invoke({}, config)
        print(result.state.value, flush=True)
        return 0
    print("ready", flush=True)
    sys.stdin.readline()
    try:
        result = orch.resume(RUN_ID)
    except Exception as exc:
        print(type(exc).__name__, str(exc).splitlines()[0], flush=True)
        return 0
    print(result.state.value, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
