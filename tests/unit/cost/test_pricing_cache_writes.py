"""Cache writes priced exactly: Anthropic's 5-minute and 1-hour writes at their own rates."""

from __future__ import annotations

from decimal import Decimal
from uuid import uuid4

import pytest

from langchain_runtime.config.schema import PriceSpec
from langchain_runtime.cost import BudgetEnforcer, CostCalculator, ModelCatalog, UsageTracker
from langchain_runtime.domain import Budget, Usage

D = Decimal


def issue_usage(one_hour: int = 0, five_min: int = 2000) -> Usage:
    """The issue's call: 50 plain input, 3,000 cache reads, the writes, 200 output."""
    writes = one_hour + five_min
    return Usage(
        input_tokens=50 + 3000 + writes,
        output_tokens=200,
        cache_read_tokens=3000,
        cache_creation_tokens=writes,
        cache_creation_1h_tokens=one_hour,
    )


@pytest.fixture
def calc() -> CostCalculator:
    return CostCalculator()


def test_the_issues_5_minute_writes(calc: CostCalculator) -> None:
    # $3 in, $3.75 write, $0.30 read, $15 out: 150 + 7,500 + 900 + 3,000 micro-dollars.
    assert calc.cost("claude-sonnet-4-5", issue_usage()).amount == D("0.01155")


def test_1_hour_writes_at_twice_the_input_rate(calc: CostCalculator) -> None:
    assert calc.cost("claude-sonnet-4-5", issue_usage(one_hour=2000, five_min=0)).amount == D(
        "0.01605"
    )
    mixed = issue_usage(one_hour=1500, five_min=500)
    expected = (50 * D(3) + 3000 * D("0.30") + 500 * D("3.75") + 1500 * D(6) + 200 * D(15)) / 10**6
    assert calc.cost("claude-sonnet-4-5", mixed).amount == expected == D("0.014925")


@pytest.mark.parametrize(
    ("model", "input_price"),
    [
        ("claude-sonnet-4-5", "3"),
        ("claude-opus-4-1", "15"),
        ("claude-opus-4-6", "5"),
        ("claude-haiku-4-5", "1"),
        ("claude-3-5-haiku-20241022", "0.80"),
    ],
)
def test_1_hour_writes_on_each_anthropic_model(
    calc: CostCalculator, model: str, input_price: str
) -> None:
    # 100k tokens: under every long-context threshold
    only_1h = Usage(
        input_tokens=100_000, cache_creation_tokens=100_000, cache_creation_1h_tokens=100_000
    )
    assert calc.cost(model, only_1h).amount == 2 * D(input_price) / 10
    assert calc.info(model).cache_write_1h_price == 2 * D(input_price)


def test_long_context_1_hour_writes(calc: CostCalculator) -> None:
    usage = Usage(
        input_tokens=300_000,
        output_tokens=1_000,
        cache_read_tokens=100_000,
        cache_creation_tokens=50_000,
        cache_creation_1h_tokens=20_000,
    )
    expected = (
        150_000 * D(6)
        + 100_000 * D("0.60")
        + 30_000 * D("7.50")
        + 20_000 * D(12)
        + 1_000 * D("22.50")
    ) / 10**6
    assert calc.cost("claude-sonnet-4-20250514", usage).amount == expected


def test_without_a_1_hour_price_writes_cost_the_write_price() -> None:
    catalog = ModelCatalog()
    catalog.add("writes", input=2, output=4, cache_write=3)
    catalog.add("plain", input=2, output=4)
    calc = CostCalculator(catalog)
    usage = Usage(input_tokens=100, cache_creation_tokens=100, cache_creation_1h_tokens=100)
    assert calc.cost("writes", usage).amount == D("0.0003")
    assert calc.cost("plain", usage).amount == D("0.0002")
    # a tier without a 1-hour price keeps the base 1-hour price, like the other cache rates
    catalog.add(
        "tiered",
        input=1,
        output=1,
        cache_write_1h=5,
        long_context={"threshold": 10, "input": 2, "output": 2},
    )
    assert catalog.get("tiered").write_1h_rate(11) == D(5)
    assert catalog.get("tiered").write_1h_rate(0) == D(5)


def test_1_hour_writes_never_exceed_the_writes_passed(calc: CostCalculator) -> None:
    info = calc.info("claude-sonnet-4-5")
    # 1-hour writes beyond the cache writes given are capped at them
    capped = calc.amount(info, 1000, 0, 0, 100, cache_creation_1h_tokens=500)
    assert capped == (900 * D(3) + 100 * D(6)) / 10**6


def test_budget_settles_and_totals_1_hour_writes() -> None:
    enforcer = BudgetEnforcer(Budget(max_cost=D("0.05")))
    call = uuid4()
    enforcer.reserve(call, "claude-sonnet-4-5", 5050, 200)
    cost = enforcer.settle(call, issue_usage(one_hour=2000, five_min=0), model="claude-sonnet-4-5")
    assert cost.amount == D("0.01605")
    assert enforcer.spent.amount == D("0.01605")
    assert enforcer.remaining is not None and enforcer.remaining.amount == D("0.03395")
    assert enforcer.usage.cache_creation_1h_tokens == 2000


def test_tracker_totals_keep_the_1_hour_part() -> None:
    tracker = UsageTracker()
    tracker.record("a", issue_usage(one_hour=1500, five_min=500), task_id="t", model="m")
    tracker.record("b", issue_usage(), task_id="t", model="m")
    tracker.record("a", issue_usage(one_hour=2000, five_min=0), task_id="t", model="m")  # replaces
    totals = tracker.task_totals("t").usage
    assert (totals.cache_creation_tokens, totals.cache_creation_1h_tokens) == (4000, 2000)
    assert tracker.by_model()["m"].usage.cache_creation_1h_tokens == 2000


def test_yaml_prices_take_a_1_hour_write_price() -> None:
    spec = PriceSpec.model_validate(
        {"input": 1, "output": 5, "cache_write": 1.25, "cache_write_1h": 2}
    )
    catalog = ModelCatalog()
    info = catalog.add("my-claude", **spec.catalog_fields())
    assert info.cache_write_1h_price == D(2)
    usage = Usage(input_tokens=10, cache_creation_tokens=10, cache_creation_1h_tokens=4)
    assert (
        CostCalculator(catalog).cost("my-claude", usage).amount
        == (6 * D("1.25") + 4 * D(2)) / 10**6
    )
