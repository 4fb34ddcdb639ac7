"""CostCalculator: each kind of token at its own rate, in exact Decimal."""

from __future__ import annotations

from decimal import Decimal

import pytest

from langchain_runtime.cost import CostCalculator, ModelCatalog
from langchain_runtime.domain import Usage
from langchain_runtime.errors import ConfigurationError

D = Decimal


@pytest.fixture
def calc() -> CostCalculator:
    return CostCalculator()


def test_input_and_output_at_their_rates(calc: CostCalculator) -> None:
    cost = calc.cost("gpt-4o", Usage(input_tokens=1_000_000, output_tokens=1_000_000))
    assert cost.amount == D("12.50") and cost.currency == "USD"
    small = calc.cost("gpt-4o-mini", Usage(input_tokens=1234, output_tokens=567))
    assert small.amount == (1234 * D("0.15") + 567 * D("0.60")) / 1_000_000
    assert isinstance(small.amount, Decimal)


def test_cache_reads_are_charged_at_the_cached_rate(calc: CostCalculator) -> None:
    # The FACTS.md usage: 11 input of which 4 cached, 7 output of which 2 reasoning.
    usage = Usage(input_tokens=11, output_tokens=7, cache_read_tokens=4, reasoning_tokens=2)
    expected = (7 * D("0.15") + 4 * D("0.075") + 7 * D("0.60")) / 1_000_000
    assert calc.cost("gpt-4o-mini", usage).amount == expected


def test_cache_writes_are_charged_at_the_write_rate(calc: CostCalculator) -> None:
    usage = Usage(
        input_tokens=10_000,
        output_tokens=100,
        cache_read_tokens=6_000,
        cache_creation_tokens=3_000,
    )
    expected = (1_000 * D("3") + 6_000 * D("0.30") + 3_000 * D("3.75") + 100 * D("15")) / 10**6
    assert calc.cost("claude-sonnet-4-5", usage).amount == expected


def test_missing_cache_rates_fall_back_to_the_input_rate() -> None:
    catalog = ModelCatalog()
    catalog.add("plain", input=2, output=4)
    calc = CostCalculator(catalog)
    cached = Usage(
        input_tokens=100, output_tokens=10, cache_read_tokens=50, cache_creation_tokens=30
    )
    uncached = Usage(input_tokens=100, output_tokens=10)
    assert calc.cost("plain", cached) == calc.cost("plain", uncached)
    assert calc.cost("plain", uncached).amount == D("0.00024")


def test_reasoning_tokens_are_not_charged_twice(calc: CostCalculator) -> None:
    with_reasoning = Usage(input_tokens=100, output_tokens=500, reasoning_tokens=400)
    without = Usage(input_tokens=100, output_tokens=500)
    assert calc.cost("o3", with_reasoning) == calc.cost("o3", without)
    assert calc.cost("o3", without).amount == (100 * D("2") + 500 * D("8")) / 10**6


def test_long_context_tier_applies_above_the_threshold(calc: CostCalculator) -> None:
    at = Usage(input_tokens=200_000, output_tokens=1_000)
    above = Usage(input_tokens=200_001, output_tokens=1_000)
    assert calc.cost("claude-sonnet-4-5", at).amount == (200_000 * D("3") + 1_000 * D("15")) / 10**6
    assert (
        calc.cost("claude-sonnet-4-5", above).amount
        == (200_001 * D("6") + 1_000 * D("22.50")) / 10**6
    )
    cached = Usage(
        input_tokens=300_000,
        output_tokens=0,
        cache_read_tokens=100_000,
        cache_creation_tokens=50_000,
    )
    assert (
        calc.cost("claude-sonnet-4-5", cached).amount
        == (150_000 * D("6") + 100_000 * D("0.60") + 50_000 * D("7.50")) / 10**6
    )


def test_gemini_tier_keeps_the_base_cache_rate(calc: CostCalculator) -> None:
    usage = Usage(input_tokens=250_000, output_tokens=2_000, cache_read_tokens=50_000)
    assert (
        calc.cost("gemini-2.5-pro", usage).amount
        == (200_000 * D("2.50") + 50_000 * D("0.125") + 2_000 * D("15")) / 10**6
    )


def test_resolved_names_are_priced(calc: CostCalculator) -> None:
    usage = Usage(input_tokens=10, output_tokens=10)
    assert calc.cost("openai:gpt-4o-2024-08-06", usage) == calc.cost("gpt-4o", usage)


def test_unknown_models_are_a_configuration_error(calc: CostCalculator) -> None:
    with pytest.raises(ConfigurationError, match="my-private-model"):
        calc.cost("my-private-model", Usage(input_tokens=1))


def test_zero_usage_costs_nothing(calc: CostCalculator) -> None:
    assert calc.cost("gpt-5", Usage()).amount == 0


def test_affordable_output_tokens(calc: CostCalculator) -> None:
    # gpt-4o-mini: 1000 input cost 0.00015; 0.00045 left buys 750 output tokens.
    assert calc.affordable_output_tokens("gpt-4o-mini", 1000, D("0.0006")) == 750
    assert calc.affordable_output_tokens("gpt-4o-mini", 1000, D("0.00060059")) == 750
    assert calc.affordable_output_tokens("gpt-4o-mini", 1000, D("0.0001")) == 0
    catalog = ModelCatalog()
    catalog.add("free-output", input=1, output=0, max_output_tokens=4096)
    assert CostCalculator(catalog).affordable_output_tokens("free-output", 10, D(1)) == 4096
