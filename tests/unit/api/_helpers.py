"""Shared pieces of the API tests: a configuration, a gated workflow, polling."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

from langchain_core.runnables import RunnableLambda

from langchain_runtime import Orchestrator, Task

CONFIG: dict[str, Any] = {
    "models": {
        "fast": {"provider": "simulated", "response_tokens": 8},
        "slow": {"provider": "simulated", "response_tokens": 8, "latency": 0.2},
    },
    "policies": {"tight": {"max_parallelism": 1, "budget": {"max_cost": "0.0000001"}}},
    "workflows": {
        "hello": {
            "tasks": [
                {"id": "greet", "prompt": "Greet {name}", "model": "fast"},
                {"id": "shout", "prompt": "Shout {greet}", "model": "fast", "deps": ["greet"]},
            ]
        },
        "slow": {"tasks": [{"id": "wait", "prompt": "Wait for {name}", "model": "slow"}]},
    },
}


AppFactory = Callable[..., Any]


class Gate:
    """A workflow whose first task waits (cancellably, bounded) until released."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.started = threading.Event()

    def orchestrator(self) -> Orchestrator:
        async def hold(_inp: Any) -> str:
            self.started.set()
            # polls, so cancelling it (abort) ends it at once; bounded to 10 s
            for _ in range(1000):
                if self.event.is_set():
                    return "held"
                await asyncio.sleep(0.01)
            raise TimeoutError("the gate was never opened")

        return Orchestrator(
            [
                Task("hold", RunnableLambda(hold)),
                Task("after", lambda inp: f"after {inp['hold']}", deps=["hold"]),
            ],
            name="gated",
        )


def wait_for(check: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")
