"""A workflow on ChatOpenAI (respx-mocked) that a test runs, kills and resumes.

``python -m tests.integration._durable_worker STORE BILLING PHASE [LEDGER]`` runs the
chain with a run store, printing each task id once the stream reports it (after its
commit is stored); every response the mocked provider completes is appended to the
BILLING file as one JSON line, flushed and synced, so the test knows what was billed;
each request is noted in ``requests_file(BILLING)`` as it arrives (its call is then in
flight, its ledger lease held).
With LEDGER (a SQLite ledger file), every call also reserves in the scope ``SCOPE``.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import respx

from langchain_runtime import Orchestrator, RunPolicy, SQLiteLedger, SQLiteRunStore, Task

URL = "https://api.openai.com/v1/chat/completions"
STEPS = 6
RUN_ID = "6f1d0c1e-0000-4000-8000-000000000001"
#: Seconds the mocked provider takes to answer: a kill lands while a call is in flight.
LATENCY = 0.3
SCOPE = "team:durable"


def build(store: SQLiteRunStore, ledger: SQLiteLedger | None = None) -> Orchestrator:
    from langchain_openai import ChatOpenAI

    model = ChatOpenAI(model="gpt-4o-mini", api_key="sk-test", max_retries=0, timeout=5)
    tasks = [Task("t0", prompt="Step 0 on {topic}.", model=model)]
    for i in range(1, STEPS):
        prompt = f"Step {i} after: {{t{i - 1}}}"
        tasks.append(Task(f"t{i}", prompt=prompt, model=model, deps=[f"t{i - 1}"]))
    if ledger is None:
        return Orchestrator(tasks, store=store)
    return Orchestrator(tasks, store=store, ledger=ledger, policy=RunPolicy(scopes=(SCOPE,)))


def usage_for(step: int) -> dict[str, int]:
    return {"prompt_tokens": 20 + step, "completion_tokens": 10, "total_tokens": 30 + step}


def requests_file(billing: Path) -> Path:
    """Where the mock notes each request's step as it arrives."""
    return billing.with_suffix(".requests")


def mock(router: respx.Router, billing: Path, phase: str, latency: float = LATENCY) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        prompt = body["messages"][-1]["content"]
        step = int(prompt.split()[1])
        with requests_file(billing).open("a") as f:
            f.write(f"{phase} {step}\n")
        time.sleep(latency)
        with billing.open("a") as f:
            f.write(json.dumps({"phase": phase, "step": step, "usage": usage_for(step)}) + "\n")
            f.flush()
            os.fsync(f.fileno())
        return httpx.Response(
            200,
            json={
                "id": f"c{step}",
                "object": "chat.completion",
                "created": 1,
                "model": "gpt-4o-mini",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": f"result of step {step}"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": usage_for(step),
            },
        )

    router.post(URL).mock(side_effect=answer)


def main(argv: list[str]) -> int:
    store_path, billing, phase = Path(argv[0]), Path(argv[1]), argv[2]
    store = SQLiteRunStore(store_path)
    ledger = SQLiteLedger(argv[3]) if len(argv) > 3 else None
    with respx.mock() as router:
        mock(router, billing, phase)
        orch = build(store, ledger)
        handle_input: dict[str, Any] = {"topic": "owls"}
        for chunk in orch.stream(handle_input, {"run_id": uuid.UUID(RUN_ID)}):
            task_id = getattr(chunk, "task_id", None)
            if task_id is not None:
                print(task_id, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
