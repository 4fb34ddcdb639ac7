"""MemoryManager: a thread-safe LangChain BaseStore with write hooks and snapshots."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from langchain_core.stores import BaseStore

from langchain_runtime.context.memory import MemoryManager


def test_is_a_langchain_store_with_the_sync_api() -> None:
    memory = MemoryManager({"seed": 1})
    assert isinstance(memory, BaseStore)
    memory.mset([("a", 1), ("b", [1, 2]), ("a", 3)])
    assert memory.mget(["a", "b", "missing", "seed"]) == [3, [1, 2], None, 1]
    assert list(memory.yield_keys()) == ["seed", "a", "b"]
    assert list(memory.yield_keys(prefix="s")) == ["seed"]
    memory.mdelete(["a", "missing"])
    assert memory.snapshot() == {"seed": 1, "b": [1, 2]}
    assert len(memory) == 2 and "b" in memory and "a" not in memory


@pytest.mark.anyio
async def test_async_api_works_in_memory() -> None:
    memory = MemoryManager()
    await memory.amset([("facts", ["owls hunt at night"]), ("topic", "owls")])
    assert await memory.amget(["topic", "nope"]) == ["owls", None]
    assert [k async for k in memory.ayield_keys(prefix="t")] == ["topic"]
    await memory.amdelete(["topic"])
    assert memory.snapshot() == {"facts": ["owls hunt at night"]}


def test_get_returns_the_default_only_for_missing_keys() -> None:
    memory = MemoryManager({"none": None, "zero": 0})
    assert memory.get("zero", 5) == 0
    assert memory.get("none", 5) is None
    assert memory.get("missing") is None
    assert memory.get("missing", "n/a") == "n/a"


def test_snapshot_is_isolated_from_later_changes() -> None:
    initial = {"a": 1}
    memory = MemoryManager(initial)
    initial["b"] = 2  # the initial mapping is copied too
    snap = memory.snapshot()
    snap["a"] = 99
    snap["c"] = 3
    memory.mset([("d", 4)])
    assert memory.snapshot() == {"a": 1, "d": 4}
    assert snap == {"a": 99, "c": 3}


def test_on_write_and_on_delete_see_every_change_in_order() -> None:
    events: list[tuple[Any, ...]] = []
    memory = MemoryManager(
        {"seed": 0},
        on_write=lambda key, value: events.append(("write", key, value)),
        on_delete=lambda key: events.append(("delete", key)),
    )
    memory.mset([("b", 2), ("a", 1)])
    memory.mdelete(["a", "missing"])
    assert events == [("write", "b", 2), ("write", "a", 1), ("delete", "a")]


def test_on_write_may_read_the_memory_and_its_errors_reach_the_writer() -> None:
    seen: list[Any] = []

    def hook(key: str, value: Any) -> None:
        seen.append(memory.get(key))  # would deadlock if called under the lock
        if value == "bad":
            raise ValueError("rejected")

    memory = MemoryManager(on_write=hook)
    memory.mset([("k", "good")])
    with pytest.raises(ValueError, match="rejected"):
        memory.mset([("k", "bad")])
    assert seen == ["good", "bad"]
    assert memory.get("k") == "bad"  # the write was made before the hook ran


def test_keys_must_be_strings() -> None:
    memory = MemoryManager()
    with pytest.raises(TypeError, match="strings"):
        memory.mset([(1, "x")])  # type: ignore[list-item]
    assert memory.snapshot() == {}


def test_concurrent_writers_lose_nothing() -> None:
    writes: list[str] = []
    lock = threading.Lock()

    def record(key: str, _value: Any) -> None:
        with lock:
            writes.append(key)

    memory = MemoryManager(on_write=record)
    start = threading.Barrier(8)

    def writer(n: int) -> None:
        start.wait()
        for i in range(500):
            memory.mset([(f"w{n}-{i}", i)])
            memory.mget([f"w{n}-{i}"])
            list(memory.yield_keys(prefix=f"w{n}-"))
            if i % 2:
                memory.mdelete([f"w{n}-{i}"])

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    snap = memory.snapshot()
    assert len(snap) == 8 * 250
    assert all(value % 2 == 0 for value in snap.values())
    assert len(writes) == 8 * 500
