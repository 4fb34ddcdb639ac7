"""UsageTracker: totals per run, task and model; each call counted once."""

from __future__ import annotations

import threading
import uuid
from decimal import Decimal

from langchain_runtime.cost import UsageTracker
from langchain_runtime.domain import Cost, Usage


def u(inp: int, out: int, **kw: int) -> Usage:
    return Usage(input_tokens=inp, output_tokens=out, **kw)


def test_a_second_record_for_the_same_run_replaces_the_first() -> None:
    tracker = UsageTracker()
    run_id = uuid.uuid4()
    assert tracker.record(run_id, u(10, 5), cost=Cost(amount=Decimal("0.1")), model="m")
    assert not tracker.record(str(run_id), u(10, 8), cost=Cost(amount=Decimal("0.2")), model="m")
    assert tracker.calls == 1
    assert tracker.usage == u(10, 8)
    assert tracker.cost.amount == Decimal("0.2")
    assert tracker.by_model()["m"].calls == 1


def test_totals_per_task_and_model() -> None:
    tracker = UsageTracker()
    tracker.record("1", u(10, 1, cache_read_tokens=4), model="a", task_id="t1")
    tracker.record("2", u(20, 2, reasoning_tokens=1), model="b", task_id="t1")
    tracker.record("3", u(30, 3), model="a", task_id="t2")
    tracker.record("4", u(40, 4, cache_creation_tokens=5))
    assert tracker.usage == u(
        100, 10, cache_read_tokens=4, cache_creation_tokens=5, reasoning_tokens=1
    )
    by_task = tracker.by_task()
    assert list(by_task) == ["t1", "t2"]
    assert by_task["t1"].usage == u(30, 3, cache_read_tokens=4, reasoning_tokens=1)
    assert by_task["t1"].calls == 2
    assert tracker.task_totals("t2").usage == u(30, 3)
    assert tracker.task_totals("nope").calls == 0
    by_model = tracker.by_model()
    assert {k: v.usage.total_tokens for k, v in by_model.items()} == {
        "a": 44,
        "b": 22,
        "unknown": 44,
    }
    assert [r.call_id for r in tracker.records()] == ["1", "2", "3", "4"]


def test_replacing_moves_a_call_between_tasks() -> None:
    tracker = UsageTracker()
    tracker.record("x", u(10, 0), task_id="old")
    tracker.record("x", u(10, 0), task_id="new")
    assert "old" not in tracker.by_task()
    assert tracker.by_task()["new"].usage.input_tokens == 10


def test_estimated_flag_follows_the_records() -> None:
    tracker = UsageTracker()
    tracker.record("a", Usage(input_tokens=5, estimated=True))
    assert tracker.usage.estimated
    tracker.record("a", Usage(input_tokens=5, output_tokens=1))
    assert not tracker.usage.estimated
    got = tracker.get("a")
    assert got is not None and got.usage.output_tokens == 1
    tracker.reset()
    assert tracker.calls == 0 and tracker.usage == Usage()


def test_concurrent_records_add_up_exactly() -> None:
    tracker = UsageTracker()

    def worker(w: int) -> None:
        for i in range(500):
            tracker.record(f"{w}-{i}", u(3, 2), cost=Cost(amount=Decimal("0.001")), task_id=str(w))
            # Every call is reported twice (as with a retried callback): counted once.
            tracker.record(f"{w}-{i}", u(3, 2), cost=Cost(amount=Decimal("0.001")), task_id=str(w))

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert tracker.calls == 4000
    assert tracker.usage == u(12_000, 8_000)
    assert tracker.cost.amount == Decimal("4.000")
    assert all(v.calls == 500 for v in tracker.by_task().values())
