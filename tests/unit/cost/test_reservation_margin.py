"""Reservations inflate input counts for tokenizers tiktoken cannot reproduce."""

from __future__ import annotations

from decimal import Decimal

import pytest
from langchain_core.messages import HumanMessage

from langchain_runtime import Budget, BudgetCallbackHandler, BudgetExceededError, TokenEstimator
from langchain_runtime.testing import ScriptedChatModel


@pytest.mark.parametrize(
    ("model", "margin"),
    [
        ("gpt-4o-mini", 1.0),
        ("openai:gpt-4.1", 1.0),
        ("simulated", 1.0),
        ("claude-haiku-4-5", 1.25),
        ("gemini-2.5-flash", 1.25),
        ("mystery", 1.25),
    ],
)
def test_margin_by_family(model: str, margin: float) -> None:
    assert TokenEstimator().input_margin(model) == margin


def test_heuristic_counting_gets_the_margin_even_for_openai(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from langchain_runtime.cost import _encodings

    monkeypatch.setattr(_encodings, "get_encoding", lambda *a, **k: None)  # nothing loads
    est = TokenEstimator(allow_download=False)
    assert est.method("gpt-4o") == "heuristic"
    assert est.input_margin("gpt-4o") == 1.25


def test_a_claude_call_reserves_the_inflated_input() -> None:
    text = "the owl " * 400
    est = TokenEstimator()
    counted = est.count_messages([HumanMessage(text)], "claude-haiku-4-5")
    # exactly enough budget for the plain count plus 10 output tokens: refused,
    # because the reservation holds 25% more input than counted
    handler = BudgetCallbackHandler(Budget(max_tokens=counted + 10))
    model = ScriptedChatModel(responses=["ok"], model_name="claude-haiku-4-5")
    with pytest.raises(BudgetExceededError):
        model.invoke(text, config={"callbacks": [handler]}, max_tokens=10)
    assert model.calls == 0
    roomy = BudgetCallbackHandler(Budget(max_tokens=int(counted * 1.25) + 11))
    assert model.invoke(text, config={"callbacks": [roomy]}, max_tokens=10).content == "ok"
    assert roomy.spent.amount > Decimal(0)


def test_a_max_tokens_set_on_the_model_is_clamped_to_the_budget() -> None:
    from langchain_runtime import with_budget
    from langchain_runtime.testing import SimulatedChatModel

    model = SimulatedChatModel(max_tokens=300, response_tokens=300)
    budgeted = with_budget(model, max_tokens=200)
    answer = budgeted.invoke("hello")  # 300 output tokens could not fit: clamped, not overrun
    assert answer.usage_metadata is not None
    assert 0 < answer.usage_metadata["output_tokens"] < 200
    assert 0 < budgeted.usage.total_tokens <= 200


def test_a_stream_closed_early_is_charged_what_it_produced() -> None:
    from langchain_runtime import with_budget
    from langchain_runtime.testing import SimulatedChatModel

    budgeted = with_budget(SimulatedChatModel(response_tokens=40), max_tokens=5000)
    stream = budgeted.stream("tell me about owls")
    for _ in range(6):
        next(stream)
    stream.close()
    usage = budgeted.usage
    assert usage.estimated and usage.input_tokens > 0
    assert usage.output_tokens >= 5  # the chunks received were counted
