from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.runnables import RunnableLambda


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Tracker:
    """Records task starts/ends and the peak number running at once."""

    def __init__(self) -> None:
        self.running = 0
        self.peak = 0
        self.started: list[str] = []
        self.finished: list[str] = []

    def task(
        self, name: str, delay: float = 0.0, result: Any = None, fail: BaseException | None = None
    ) -> RunnableLambda[Any, Any]:
        async def body(inp: dict[str, Any]) -> Any:
            self.running += 1
            self.peak = max(self.peak, self.running)
            self.started.append(name)
            try:
                if delay:
                    await asyncio.sleep(delay)
                if fail is not None:
                    raise fail
                return result if result is not None else f"{name}-out"
            finally:
                self.running -= 1
                self.finished.append(name)

        return RunnableLambda(body, name=name)


def gated(
    gate: threading.Event, result: Any = 1, fail: BaseException | None = None
) -> RunnableLambda[Any, Any]:
    """A task that waits (cancellably) until another thread sets ``gate``."""

    async def body(_inp: Any) -> Any:
        await asyncio.wait_for(asyncio.to_thread(gate.wait, 10), 11)
        if fail is not None:
            raise fail
        return result

    return RunnableLambda(body)


@pytest.fixture
def tracker() -> Tracker:
    return Tracker()


def noop(value: Any = 1) -> Callable[[Any], Any]:
    return lambda _inp: value
