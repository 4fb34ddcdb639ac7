"""A reservation prices input at the worst cache-write rate its cache_control marks ask for."""

from __future__ import annotations

import decimal
from decimal import Decimal

from langchain_core.messages import HumanMessage, SystemMessage

from langchain_runtime.cost import CostCalculator, TokenEstimator
from langchain_runtime.cost.pricing import cache_write_ttl
from langchain_runtime.domain import Usage

BIG = "lorem ipsum dolor sit amet " * 4000


def marked(ttl: str | None) -> list[object]:
    mark = {"type": "ephemeral"} if ttl is None else {"type": "ephemeral", "ttl": ttl}
    return [
        SystemMessage(content=[{"type": "text", "text": BIG, "cache_control": mark}]),
        HumanMessage("hi"),
    ]


def test_cache_write_ttl_finds_marks_anywhere() -> None:
    assert cache_write_ttl(marked("1h")) == "1h"
    assert cache_write_ttl(marked("5m")) == "5m"
    assert cache_write_ttl(marked(None)) == "5m"
    assert cache_write_ttl([SystemMessage(BIG), HumanMessage("hi")]) is None
    # A mark in additional_kwargs, or on a tool schema, counts too; 1h wins over 5m.
    tagged = HumanMessage("hi", additional_kwargs={"cache_control": {"type": "ephemeral"}})
    tool = {"name": "t", "input_schema": {}, "cache_control": {"type": "ephemeral", "ttl": "1h"}}
    assert cache_write_ttl([tagged]) == "5m"
    assert cache_write_ttl([tagged], [tool]) == "1h"


def test_one_hour_write_hold_covers_the_bill() -> None:
    # Reviewer's t5: every input token written to a 1-hour cache, output at its limit.
    calc = CostCalculator()
    model = "claude-sonnet-4-5"
    n = TokenEstimator().count_messages(marked("1h"), model)
    output = 4000
    billed = calc.cost(
        model,
        Usage(
            input_tokens=n + 5,
            output_tokens=output,
            cache_creation_tokens=n,
            cache_creation_1h_tokens=n,
        ),
    ).amount
    plain = calc.amount(model, n + 5, output)
    assert plain < billed  # what the hold priced before: not enough
    ttl = cache_write_ttl(marked("1h"))
    assert calc.hold_amount(model, n + 5, output, ttl) >= billed
    # And the output the hold leaves room for, at that rate, keeps the bill in budget.
    budget = Decimal("0.20")
    allowed = calc.affordable_output_tokens(model, n + 5, budget, cache_write=ttl)
    bill = calc.cost(
        model,
        Usage(
            input_tokens=n + 5,
            output_tokens=allowed,
            cache_creation_tokens=n,
            cache_creation_1h_tokens=n,
        ),
    ).amount
    assert 0 < allowed < calc.affordable_output_tokens(model, n + 5, budget)
    assert bill <= budget


def test_five_minute_write_hold_covers_the_bill() -> None:
    calc = CostCalculator()
    model = "claude-sonnet-4-5"
    usage = Usage(input_tokens=10_000, output_tokens=100, cache_creation_tokens=10_000)
    billed = calc.cost(model, usage).amount
    assert calc.hold_amount(model, 10_000, 100) < billed
    assert calc.hold_amount(model, 10_000, 100, "5m") == billed


def test_prices_are_exact_under_a_low_precision_context() -> None:
    calc = CostCalculator()
    with decimal.localcontext() as ctx:
        ctx.prec = 2
        amount = calc.amount("gpt-4o-mini", 1234, 567)
        held = calc.hold_amount("claude-sonnet-4-5", 1234, 567, "1h")
        allowed = calc.affordable_output_tokens("gpt-4o-mini", 1234, Decimal("0.001"))
    assert amount == (1234 * Decimal("0.15") + 567 * Decimal("0.60")) / 1_000_000
    assert held == (1234 * Decimal("6") + 567 * Decimal("15")) / 1_000_000
    assert allowed == int((Decimal("1000") - 1234 * Decimal("0.15")) / Decimal("0.60"))
