"""Bridges from sync callers to the async core (the one source of truth).

``invoke`` must work where an event loop is already running in the thread (as in
Jupyter): then the coroutine runs on a fresh loop in a worker thread, with the
caller's context variables copied so tracing and callbacks still see them.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import queue
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

logger = logging.getLogger(__name__)

#: Seconds a closed stream waits for its worker to finish cancelling.
_CLOSE_TIMEOUT = 10.0


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def run_loop(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` without waiting for the default executor's threads.

    A task that is a plain sync callable runs in an executor thread that cannot be
    cancelled; ``asyncio.run`` would wait for it at shutdown with no timeout, so a
    run's timeout or abort would not return control. Here the loop's executor is
    shut down without waiting: a stuck thread finishes (or not) in the background.
    """
    loop = asyncio.new_event_loop()
    executor = ThreadPoolExecutor(thread_name_prefix="langchain-runtime-task")
    loop.set_default_executor(executor)
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(coro)
    finally:
        try:
            _cancel_all(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            executor.shutdown(wait=False, cancel_futures=True)
            asyncio.set_event_loop(None)
            loop.close()


def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))


def run_sync(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run the coroutine made by ``factory`` to completion from sync code."""
    if not _loop_running():
        return run_loop(factory())
    ctx = contextvars.copy_context()
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = ctx.run(run_loop, factory())
        except BaseException as exc:  # handed to the caller's thread below
            box["error"] = exc

    thread = threading.Thread(target=target, name="langchain-runtime-invoke", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


def iter_sync(factory: Callable[[], AsyncIterator[T]]) -> Iterator[T]:
    """Iterate an async generator from sync code, in a worker thread's loop.

    Closing the returned iterator early cancels the async generator.
    """
    items: queue.Queue[Any] = queue.Queue(maxsize=64)
    stop = threading.Event()
    loop_box: dict[str, Any] = {}
    ctx = contextvars.copy_context()

    async def pump() -> None:
        loop_box["task"] = asyncio.current_task()
        loop_box["loop"] = asyncio.get_running_loop()
        agen = factory()
        try:
            async for item in agen:
                while True:
                    if stop.is_set():
                        return
                    try:
                        items.put(("item", item), timeout=0.05)
                        break
                    except queue.Full:
                        await asyncio.sleep(0)
        finally:
            await _aclose(agen)

    def target() -> None:
        try:
            ctx.run(run_loop, pump())
        except BaseException as exc:  # handed to the consumer below
            items.put(("error", exc))
        else:
            items.put(("done", None))

    thread = threading.Thread(target=target, name="langchain-runtime-stream", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = items.get()
            if kind == "item":
                yield value
            elif kind == "error":
                raise value
            else:
                return
    finally:
        if thread.is_alive():
            stop.set()
            loop = loop_box.get("loop")
            task = loop_box.get("task")
            if loop is not None and task is not None:
                loop.call_soon_threadsafe(task.cancel)
            # drain so the pump never blocks on a full queue while stopping
            deadline = time.monotonic() + _CLOSE_TIMEOUT
            while thread.is_alive() and time.monotonic() < deadline:
                with contextlib.suppress(queue.Empty):
                    items.get(timeout=0.05)
            if thread.is_alive():
                logger.warning(
                    "stream worker did not stop within %ss; left running as a daemon thread",
                    _CLOSE_TIMEOUT,
                )


async def _aclose(agen: AsyncIterator[Any]) -> None:
    aclose = getattr(agen, "aclose", None)
    if aclose is not None:
        await aclose()


if sys.version_info >= (3, 11):

    async def with_timeout(aw: Awaitable[T], seconds: float | None) -> tuple[bool, T | None]:
        """Await ``aw``; return ``(timed_out, value)``. Cancels ``aw`` on timeout."""
        if seconds is None:
            return False, await aw
        try:
            async with asyncio.timeout(seconds) as cm:
                return False, await aw
        except TimeoutError:
            if cm.expired():
                return True, None
            raise

else:  # pragma: no cover - Python 3.10

    async def with_timeout(aw: Awaitable[T], seconds: float | None) -> tuple[bool, T | None]:
        """Await ``aw``; return ``(timed_out, value)``. Cancels ``aw`` on timeout."""
        if seconds is None:
            return False, await aw
        fut = asyncio.ensure_future(aw)
        done, _ = await asyncio.wait({fut}, timeout=seconds)
        if not done:
            fut.cancel()
            await asyncio.gather(fut, return_exceptions=True)
            return True, None
        return False, fut.result()
