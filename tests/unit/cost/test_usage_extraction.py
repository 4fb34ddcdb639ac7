"""Reading reported usage: every provider's detail tokens, whichever shape they come in."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from anthropic.types import Usage as AnthropicUsage
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_anthropic.chat_models import _create_usage_metadata
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, Generation, LLMResult
from pydantic import ValidationError

from langchain_runtime.cost import CostCalculator, ModelCatalog, handler
from langchain_runtime.cost.usage import usage_from_dict, usage_from_result
from langchain_runtime.domain import Usage

D = Decimal

# The issue's call: 50 plain input, 3,000 cache reads, 2,000 cache writes, 200 output.
ISSUE = {"input_tokens": 5050, "output_tokens": 200, "total_tokens": 5250}


@pytest.mark.parametrize(
    ("details", "writes", "writes_1h"),
    [
        # langchain-anthropic without the API's TTL breakdown
        ({"cache_read": 3000, "cache_creation": 2000}, 2000, 0),
        # ...with it: cache_creation is 0 and the tokens are only under ephemeral_*
        (
            {
                "cache_read": 3000,
                "cache_creation": 0,
                "ephemeral_5m_input_tokens": 2000,
                "ephemeral_1h_input_tokens": 0,
            },
            2000,
            0,
        ),
        (
            {
                "cache_read": 3000,
                "cache_creation": 0,
                "ephemeral_5m_input_tokens": 0,
                "ephemeral_1h_input_tokens": 2000,
            },
            2000,
            2000,
        ),
        (
            {
                "cache_read": 3000,
                "cache_creation": 0,
                "ephemeral_5m_input_tokens": 500,
                "ephemeral_1h_input_tokens": 1500,
            },
            2000,
            1500,
        ),
        # an integration that reports the total and the breakdown is not counted twice
        (
            {
                "cache_read": 3000,
                "cache_creation": 2000,
                "ephemeral_5m_input_tokens": 500,
                "ephemeral_1h_input_tokens": 1500,
            },
            2000,
            1500,
        ),
        # the breakdown present but empty (a call that wrote nothing to the cache)
        (
            {
                "cache_read": 3000,
                "cache_creation": 2000,
                "ephemeral_5m_input_tokens": 0,
                "ephemeral_1h_input_tokens": 0,
            },
            2000,
            0,
        ),
    ],
)
def test_anthropic_cache_writes_in_every_shape(
    details: dict[str, int], writes: int, writes_1h: int
) -> None:
    usage = Usage.from_usage_metadata({**ISSUE, "input_token_details": details})
    assert usage == Usage(
        input_tokens=5050,
        output_tokens=200,
        total_tokens=5250,
        cache_read_tokens=3000,
        cache_creation_tokens=writes,
        cache_creation_1h_tokens=writes_1h,
    )
    assert usage.cache_creation_5m_tokens == writes - writes_1h


def test_openai_and_gemini_usage_metadata() -> None:
    openai = Usage.from_usage_metadata(
        {
            "input_tokens": 11,
            "output_tokens": 7,
            "total_tokens": 18,
            "input_token_details": {"audio": 0, "cache_read": 4},
            "output_token_details": {"audio": 0, "reasoning": 2},
        }
    )
    assert openai == Usage(
        input_tokens=11, output_tokens=7, cache_read_tokens=4, reasoning_tokens=2
    )
    gemini = Usage.from_usage_metadata(
        {
            "input_tokens": 1200,
            "output_tokens": 380,
            "total_tokens": 1580,
            "input_token_details": {"cache_read": 1000},
            "output_token_details": {"reasoning": 300},
        }
    )
    assert gemini == Usage(
        input_tokens=1200, output_tokens=380, cache_read_tokens=1000, reasoning_tokens=300
    )
    assert gemini.cache_creation_tokens == 0 and gemini.cache_creation_1h_tokens == 0


def test_missing_or_broken_counts_read_as_zero() -> None:
    assert Usage.from_usage_metadata(None) == Usage()
    assert Usage.from_usage_metadata({"input_tokens": 3}) == Usage(input_tokens=3)
    odd = Usage.from_usage_metadata(
        {
            "input_tokens": 10,
            "output_tokens": None,
            "input_token_details": {"cache_read": None, "ephemeral_1h_input_tokens": -5},
        }
    )
    assert odd == Usage(input_tokens=10)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # OpenAI Chat Completions
        (
            {
                "prompt_tokens": 11,
                "completion_tokens": 7,
                "total_tokens": 18,
                "prompt_tokens_details": {"cached_tokens": 4},
                "completion_tokens_details": {"reasoning_tokens": 2},
            },
            Usage(input_tokens=11, output_tokens=7, cache_read_tokens=4, reasoning_tokens=2),
        ),
        # OpenAI Responses API: input_tokens includes the cached ones
        (
            {
                "input_tokens": 1200,
                "input_tokens_details": {"cached_tokens": 1000},
                "output_tokens": 380,
                "output_tokens_details": {"reasoning_tokens": 300},
                "total_tokens": 1580,
            },
            Usage(
                input_tokens=1200, output_tokens=380, cache_read_tokens=1000, reasoning_tokens=300
            ),
        ),
        # Anthropic, plain: input_tokens leaves the cache tokens out
        (
            {
                "input_tokens": 50,
                "output_tokens": 200,
                "cache_read_input_tokens": 3000,
                "cache_creation_input_tokens": 2000,
            },
            Usage(
                input_tokens=5050,
                output_tokens=200,
                cache_read_tokens=3000,
                cache_creation_tokens=2000,
            ),
        ),
        # Anthropic with the TTL breakdown
        (
            {
                "input_tokens": 50,
                "output_tokens": 200,
                "cache_read_input_tokens": 3000,
                "cache_creation_input_tokens": 2000,
                "cache_creation": {
                    "ephemeral_5m_input_tokens": 500,
                    "ephemeral_1h_input_tokens": 1500,
                },
            },
            Usage(
                input_tokens=5050,
                output_tokens=200,
                cache_read_tokens=3000,
                cache_creation_tokens=2000,
                cache_creation_1h_tokens=1500,
            ),
        ),
        # Gemini, snake_case (the SDK's model_dump) and camelCase (the REST body)
        (
            {
                "prompt_token_count": 1200,
                "candidates_token_count": 80,
                "thoughts_token_count": 300,
                "cached_content_token_count": 1000,
                "total_token_count": 1580,
            },
            Usage(
                input_tokens=1200, output_tokens=380, cache_read_tokens=1000, reasoning_tokens=300
            ),
        ),
        (
            {"promptTokenCount": 40, "candidatesTokenCount": 9, "toolUsePromptTokenCount": 2},
            Usage(input_tokens=42, output_tokens=9),
        ),
    ],
    ids=["openai-chat", "openai-responses", "anthropic", "anthropic-ttl", "gemini", "gemini-rest"],
)
def test_raw_provider_usage(raw: dict[str, Any], expected: Usage) -> None:
    assert usage_from_dict(raw) == expected


def test_unknown_raw_usage_is_none() -> None:
    assert usage_from_dict({}) is None
    assert usage_from_dict({"tokens": 5}) is None


def _result(*messages: AIMessage, llm_output: dict[str, Any] | None = None) -> LLMResult:
    return LLMResult(
        generations=[[ChatGeneration(message=m)] for m in messages], llm_output=llm_output
    )


def test_usage_from_result_prefers_usage_metadata_and_sums_prompts() -> None:
    one = AIMessage(
        "a",
        usage_metadata={
            "input_tokens": 5050,
            "output_tokens": 200,
            "total_tokens": 5250,
            "input_token_details": {
                "cache_read": 3000,
                "cache_creation": 0,
                "ephemeral_5m_input_tokens": 500,
                "ephemeral_1h_input_tokens": 1500,
            },
        },
    )
    two = AIMessage(
        "b", usage_metadata={"input_tokens": 10, "output_tokens": 1, "total_tokens": 11}
    )
    raw = {"token_usage": {"prompt_tokens": 999, "completion_tokens": 999}}
    total = usage_from_result(_result(one, two, llm_output=raw))
    assert total == Usage(
        input_tokens=5060,
        output_tokens=201,
        cache_read_tokens=3000,
        cache_creation_tokens=2000,
        cache_creation_1h_tokens=1500,
    )


def test_usage_from_result_falls_back_to_the_raw_usage() -> None:
    raw = {
        "usage": {
            "input_tokens": 50,
            "output_tokens": 200,
            "cache_read_input_tokens": 3000,
            "cache_creation_input_tokens": 2000,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 2000},
        }
    }
    usage = usage_from_result(_result(AIMessage("a"), llm_output=raw))
    assert usage is not None and usage.cache_creation_1h_tokens == 2000
    assert usage.input_tokens == 5050
    assert usage_from_result(LLMResult(generations=[[Generation(text="x")]])) is None
    assert usage_from_result(None) is None


def test_the_handler_uses_this_module() -> None:
    assert handler.usage_from_result is usage_from_result


def test_1h_writes_are_a_part_of_cache_writes() -> None:
    with pytest.raises(ValidationError, match="cache_creation_1h_tokens"):
        Usage(input_tokens=10, cache_creation_tokens=1, cache_creation_1h_tokens=2)
    a = Usage(input_tokens=100, cache_creation_tokens=60, cache_creation_1h_tokens=40)
    b = Usage(input_tokens=10, cache_creation_tokens=10, cache_creation_1h_tokens=0, estimated=True)
    total = a + b
    assert (total.cache_creation_tokens, total.cache_creation_1h_tokens) == (70, 40)
    assert total.cache_creation_5m_tokens == 30 and total.estimated
    assert Usage.model_validate_json(a.model_dump_json()) == a


counts = st.integers(min_value=0, max_value=2_000_000)


@settings(max_examples=200, deadline=None)
@given(plain=counts, read=counts, five_min=counts, one_hour=counts, out=counts, ttl=st.booleans())
def test_langchain_anthropics_metadata_and_the_raw_usage_agree(
    plain: int, read: int, five_min: int, one_hour: int, out: int, ttl: bool
) -> None:
    """Whatever the counts and shape, reading langchain-anthropic's usage_metadata gives
    what the API's raw usage says, and the cost is each part at its own rate."""
    raw: dict[str, Any] = {
        "input_tokens": plain,
        "output_tokens": out,
        "cache_read_input_tokens": read,
        "cache_creation_input_tokens": five_min + (one_hour if ttl else 0),
    }
    if ttl:
        raw["cache_creation"] = {
            "ephemeral_5m_input_tokens": five_min,
            "ephemeral_1h_input_tokens": one_hour,
        }
    # langchain-anthropic's own conversion of the SDK's Usage object
    metadata = _create_usage_metadata(AnthropicUsage.model_validate(raw))
    usage = Usage.from_usage_metadata(metadata)
    assert usage == usage_from_dict(raw)
    writes_1h = one_hour if ttl else 0
    assert usage.cache_creation_1h_tokens == writes_1h
    assert usage.input_tokens == plain + read + five_min + writes_1h
    info = ModelCatalog.default().get("claude-haiku-4-5")  # no long-context tier
    expected = (
        plain * info.input_price
        + read * D("0.10")
        + five_min * D("1.25")
        + writes_1h * D("2")
        + out * D("5")
    ) / 10**6
    assert CostCalculator().cost("claude-haiku-4-5", usage).amount == expected
