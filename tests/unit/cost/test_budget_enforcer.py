"""BudgetEnforcer: reserve-then-settle math, refusals, per-task limits, concurrency."""

from __future__ import annotations

import contextlib
import threading
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from langchain_runtime.cost import BudgetEnforcer, CostCalculator, ModelCatalog
from langchain_runtime.domain import Budget, Usage
from langchain_runtime.errors import BudgetExceededError, ConfigurationError

D = Decimal
MINI = "gpt-4o-mini"  # 0.15 in / 0.60 out per 1M


def mini_cost(inp: int, out: int) -> Decimal:
    return (inp * D("0.15") + out * D("0.60")) / 1_000_000


def test_a_call_that_fits_is_reserved_and_settled_at_its_real_cost() -> None:
    enforcer = BudgetEnforcer(Budget(max_cost=D("0.001")))
    res = enforcer.reserve("c1", MINI, 1000, 500, task_id="t")
    assert res.cost == mini_cost(1000, 500) and res.tokens == 1500
    assert enforcer.reserved.amount == mini_cost(1000, 500)
    assert enforcer.spent.amount == 0
    assert enforcer.remaining is not None
    assert enforcer.remaining.amount == D("0.001") - mini_cost(1000, 500)
    cost = enforcer.settle("c1", Usage(input_tokens=1000, output_tokens=100))
    assert cost.amount == mini_cost(1000, 100)
    assert enforcer.reserved.amount == 0
    assert enforcer.spent.amount == mini_cost(1000, 100)
    assert enforcer.usage == Usage(input_tokens=1000, output_tokens=100)
    assert enforcer.tracker.by_task()["t"].cost.amount == mini_cost(1000, 100)


def test_refusal_says_what_was_needed_and_what_was_left() -> None:
    enforcer = BudgetEnforcer(Budget(max_cost=D("0.001")))
    enforcer.reserve("a", MINI, 1000, 500)
    enforcer.settle("a", Usage(input_tokens=1000, output_tokens=500))  # 0.00045 spent
    enforcer.reserve("b", MINI, 1000, 500)  # 0.00045 held
    with pytest.raises(BudgetExceededError) as err:
        enforcer.reserve("c", MINI, 1000, 500, task_id="writer")
    exc = err.value
    assert exc.limit == D("0.001")
    assert exc.spent == D("0.0009")
    assert exc.task_id == "writer"
    message = str(exc)
    assert "gpt-4o-mini" in message and "$0.000450" in message  # needed
    assert "$0.000100" in message and "$0.001000" in message  # left, of the limit
    assert "1000 input + up to 500 output" in message
    assert not exc.is_retryable
    assert enforcer.reservation("c") is None  # nothing held for a refused call
    assert enforcer.reserved.amount == mini_cost(1000, 500)


def test_a_call_that_exactly_fills_the_budget_is_allowed() -> None:
    enforcer = BudgetEnforcer(Budget(max_cost=mini_cost(1000, 500)))
    enforcer.reserve("a", MINI, 1000, 500)
    assert enforcer.remaining is not None and enforcer.remaining.amount == 0
    with pytest.raises(BudgetExceededError):
        enforcer.reserve("b", MINI, 1, 0)


def test_release_frees_the_reservation() -> None:
    enforcer = BudgetEnforcer(Budget(max_cost=mini_cost(1000, 500)))
    enforcer.reserve("a", MINI, 1000, 500)
    assert enforcer.release("a") is True
    assert enforcer.release("a") is False
    enforcer.reserve("b", MINI, 1000, 500)  # fits again


def test_settling_twice_counts_the_call_once() -> None:
    enforcer = BudgetEnforcer(Budget(max_cost=D(1)))
    enforcer.reserve("a", MINI, 100, 100)
    enforcer.settle("a", Usage(input_tokens=100, output_tokens=50))
    enforcer.settle("a", Usage(input_tokens=100, output_tokens=60))
    assert enforcer.usage.output_tokens == 60
    assert enforcer.spent.amount == mini_cost(100, 60)
    assert enforcer.tracker.calls == 1


def test_reserving_the_same_call_again_replaces_its_reservation() -> None:
    enforcer = BudgetEnforcer(Budget(max_tokens=1000))
    enforcer.reserve("a", None, 400, 400)
    enforcer.reserve("a", None, 500, 400)
    assert enforcer.reserved_tokens == 900


def test_token_budget() -> None:
    enforcer = BudgetEnforcer(Budget(max_tokens=1000))
    enforcer.reserve("a", "some-unpriced-model", 300, 200)
    enforcer.settle("a", Usage(input_tokens=300, output_tokens=100))
    assert enforcer.remaining_tokens == 600
    assert enforcer.remaining is None
    with pytest.raises(BudgetExceededError) as err:
        enforcer.reserve("b", "some-unpriced-model", 500, 200, task_id="t")
    assert err.value.limit == 1000 and err.value.spent == 400 and err.value.task_id == "t"
    assert "600 of the 1000-token budget" in str(err.value)
    enforcer.reserve("b", "some-unpriced-model", 500, 100)
    assert enforcer.remaining_tokens == 0


def test_a_settled_overrun_refuses_every_later_call() -> None:
    enforcer = BudgetEnforcer(Budget(max_tokens=100))
    enforcer.reserve("a", None, 10, 10)
    enforcer.settle("a", Usage(input_tokens=10, output_tokens=500))  # ignored max_tokens
    assert enforcer.remaining_tokens == 0
    with pytest.raises(BudgetExceededError):
        enforcer.reserve("b", None, 1, 0)


def test_a_cost_budget_needs_a_price() -> None:
    enforcer = BudgetEnforcer(Budget(max_cost=D(1)))
    with pytest.raises(ConfigurationError, match="my-model"):
        enforcer.reserve("a", "my-model", 10, 10)
    with pytest.raises(ConfigurationError, match="model of this call is unknown"):
        enforcer.reserve("a", None, 10, 10)
    assert enforcer.reserved.amount == 0
    catalog = ModelCatalog.default()
    catalog.add("my-model", input=1, output=1)
    BudgetEnforcer(Budget(max_cost=D(1)), catalog).reserve("a", "my-model", 10, 10)


def test_unpriced_models_are_fine_without_a_cost_limit() -> None:
    enforcer = BudgetEnforcer(Budget(max_tokens=100))
    enforcer.reserve("a", "mystery", 10, 10)
    assert enforcer.settle("a", Usage(input_tokens=10, output_tokens=5)).amount == 0


def test_currency_mismatch_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="EUR"):
        BudgetEnforcer(Budget(max_cost=D(1), currency="EUR"))


def test_per_task_budget_for_every_task() -> None:
    enforcer = BudgetEnforcer(Budget(max_tokens=10_000), per_task=Budget(max_tokens=100))
    enforcer.reserve("a", None, 50, 40, task_id="t1")
    enforcer.reserve("b", None, 50, 40, task_id="t2")
    with pytest.raises(BudgetExceededError) as err:
        enforcer.reserve("c", None, 5, 10, task_id="t1")
    assert "task 't1'" in str(err.value) and err.value.limit == 100
    enforcer.reserve("d", None, 5, 5, task_id="t1")  # exactly 100 for t1


def test_per_task_budgets_by_id() -> None:
    enforcer = BudgetEnforcer(
        Budget(max_cost=D(1)), per_task={"cheap": Budget(max_cost=mini_cost(1000, 100))}
    )
    enforcer.reserve("a", MINI, 1000, 100, task_id="cheap")
    with pytest.raises(BudgetExceededError):
        enforcer.reserve("b", MINI, 1, 0, task_id="cheap")
    enforcer.reserve("c", MINI, 100_000, 1000, task_id="other")
    enforcer.settle("a", Usage(input_tokens=500, output_tokens=10))
    enforcer.reserve("b", MINI, 10, 10, task_id="cheap")  # settling freed room


def test_affordable_output_tokens() -> None:
    assert BudgetEnforcer().affordable_output_tokens(MINI, 1000) is None
    by_cost = BudgetEnforcer(Budget(max_cost=D("0.0006")))
    assert by_cost.affordable_output_tokens(MINI, 1000) == 750
    by_cost.reserve("a", MINI, 0, 250)  # holds 0.00015
    assert by_cost.affordable_output_tokens(MINI, 1000) == 500
    by_tokens = BudgetEnforcer(Budget(max_tokens=2000))
    by_tokens.reserve("a", None, 300, 200)
    assert by_tokens.affordable_output_tokens(None, 1000) == 500
    assert by_tokens.affordable_output_tokens(None, 5000) == 0
    both = BudgetEnforcer(
        Budget(max_cost=D("0.0006"), max_tokens=1500), per_task=Budget(max_tokens=1100)
    )
    assert both.affordable_output_tokens(MINI, 1000) == 500
    assert both.affordable_output_tokens(MINI, 1000, task_id="t") == 100
    with pytest.raises(ConfigurationError):
        by_cost.affordable_output_tokens(None, 10)


def test_pricing_may_be_a_calculator_or_a_catalog() -> None:
    catalog = ModelCatalog()
    catalog.add("m", input=1, output=1)
    for pricing in (catalog, CostCalculator(catalog)):
        enforcer = BudgetEnforcer(Budget(max_cost=D(1)), pricing)
        assert enforcer.reserve("a", "m", 10, 10).cost == D("0.00002")


def test_reset_forgets_spending() -> None:
    enforcer = BudgetEnforcer(Budget(max_tokens=10))
    enforcer.reserve("a", None, 5, 5)
    enforcer.settle("a", Usage(input_tokens=5, output_tokens=5))
    enforcer.reserve("b", None, 0, 0)
    enforcer.reset()
    assert enforcer.remaining_tokens == 10 and enforcer.reserved_tokens == 0


def test_concurrent_reservations_never_jointly_overcommit() -> None:
    per_call = mini_cost(1000, 1000)
    enforcer = BudgetEnforcer(Budget(max_cost=per_call * 37))
    admitted: list[str] = []
    refused: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(20)

    def worker(w: int) -> None:
        barrier.wait()
        for i in range(10):
            call = f"{w}-{i}"
            try:
                enforcer.reserve(call, MINI, 1000, 1000)
            except BudgetExceededError:
                with lock:
                    refused.append(call)
                continue
            with lock:
                admitted.append(call)
            enforcer.settle(call, Usage(input_tokens=1000, output_tokens=1000))

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(admitted) == 37 and len(refused) == 163
    assert enforcer.spent.amount == per_call * 37
    assert enforcer.reserved.amount == 0


ops = st.lists(
    st.tuples(
        st.sampled_from(["reserve", "settle", "release"]),
        st.integers(0, 7),  # call id
        st.integers(0, 3000),  # input tokens
        st.integers(0, 3000),  # max output tokens
        st.floats(0, 1),  # share of the reservation actually used
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(ops=ops, limit=st.integers(1, 20_000))
def test_spent_never_exceeds_the_budget_when_calls_respect_max_tokens(
    ops: list[tuple[str, int, int, int, float]], limit: int
) -> None:
    max_cost = mini_cost(limit, limit) / 2
    enforcer = BudgetEnforcer(Budget(max_cost=max_cost, max_tokens=limit))
    for op, call, inp, out, share in ops:
        cid = str(call)
        if op == "reserve":
            with contextlib.suppress(BudgetExceededError):
                enforcer.reserve(cid, MINI, inp, out)
        elif op == "settle":
            res = enforcer.reservation(cid)
            if res is not None:
                used = Usage(
                    input_tokens=res.input_tokens, output_tokens=int(res.output_tokens * share)
                )
                enforcer.settle(cid, used)
        else:
            enforcer.release(cid)
        assert enforcer.spent.amount + enforcer.reserved.amount <= max_cost
        assert enforcer.usage.total_tokens + enforcer.reserved_tokens <= limit
        assert enforcer.reserved_tokens >= 0 and enforcer.reserved.amount >= 0


# -- reserve_up_to: clamp and hold in one step -------------------------------------------


def test_reserve_up_to_holds_what_is_wanted_when_it_fits() -> None:
    enforcer = BudgetEnforcer(Budget(max_cost=D("0.01")))
    res = enforcer.reserve_up_to("a", MINI, 1000, 500)
    assert res.output_tokens == 500 and res.cost == mini_cost(1000, 500)
    assert enforcer.reserved.amount == mini_cost(1000, 500)


def test_reserve_up_to_clamps_to_what_the_money_left_pays_for() -> None:
    enforcer = BudgetEnforcer(Budget(max_cost=D("0.001")))
    enforcer.reserve("other", MINI, 1000, 500)  # 0.00045 held
    res = enforcer.reserve_up_to("a", MINI, 1000, 16_384)
    # (0.00055 - 1000 * 0.15e-6) / 0.60e-6 = 666.67 -> 666 output tokens
    assert res.output_tokens == 666
    assert enforcer.remaining is not None
    assert D(0) <= enforcer.remaining.amount < mini_cost(0, 1)  # not one more token fits


def test_reserve_up_to_clamps_to_the_tokens_left() -> None:
    enforcer = BudgetEnforcer(Budget(max_tokens=2000))
    enforcer.settle("done", Usage(input_tokens=300, output_tokens=200))
    res = enforcer.reserve_up_to("a", MINI, 1000, 4096)
    assert res.output_tokens == 500 and enforcer.remaining_tokens == 0


def test_reserve_up_to_refuses_below_the_minimal_answer() -> None:
    enforcer = BudgetEnforcer(Budget(max_tokens=1010))
    with pytest.raises(BudgetExceededError) as err:
        enforcer.reserve_up_to("a", MINI, 1000, 4096, min_output_tokens=11)
    assert "1000 input + up to 11 output" in str(err.value)
    assert enforcer.reservation("a") is None and enforcer.reserved_tokens == 0
    assert enforcer.reserve_up_to("b", MINI, 1000, 4096, min_output_tokens=10).output_tokens == 10


def test_reserve_up_to_respects_per_task_limits() -> None:
    enforcer = BudgetEnforcer(Budget(max_tokens=10_000), per_task={"t": Budget(max_tokens=1200)})
    assert enforcer.reserve_up_to("a", MINI, 1000, 4096, task_id="t").output_tokens == 200
    assert enforcer.reserve_up_to("b", MINI, 1000, 4096, task_id="u").output_tokens == 4096


def test_reserve_up_to_needs_a_price_under_a_cost_limit() -> None:
    enforcer = BudgetEnforcer(Budget(max_cost=D(1)))
    with pytest.raises(ConfigurationError, match="acme-9"):
        enforcer.reserve_up_to("a", "acme-9", 10, 10)
    assert enforcer.reserved.amount == 0


@settings(max_examples=25, deadline=None)
@given(
    limit=st.decimals(min_value=D("0.0001"), max_value=D("0.02"), places=6),
    calls=st.lists(st.integers(min_value=1, max_value=3000), min_size=2, max_size=40),
)
def test_concurrent_clamped_calls_never_hold_more_than_the_budget(
    limit: Decimal, calls: list[int]
) -> None:
    enforcer = BudgetEnforcer(Budget(max_cost=limit))
    granted: list[int] = []
    lock = threading.Lock()

    def one(i: int, inp: int) -> None:
        with contextlib.suppress(BudgetExceededError):
            res = enforcer.reserve_up_to(f"c{i}", MINI, inp, 16_384)
            with lock:
                granted.append(res.output_tokens)
            # the provider answers exactly as long as it was allowed
            enforcer.settle(f"c{i}", Usage(input_tokens=inp, output_tokens=res.output_tokens))

    threads = [threading.Thread(target=one, args=(i, n)) for i, n in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert enforcer.spent.amount <= limit
    assert enforcer.reserved.amount == 0
    assert all(1 <= g <= 16_384 for g in granted)
