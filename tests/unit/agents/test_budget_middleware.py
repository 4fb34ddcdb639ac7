"""BudgetMiddleware in real ``create_agent`` agents over a real ChatOpenAI (respx)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import ROUND_FLOOR, Decimal
from typing import Any

import httpx
import pytest
import respx
from langchain.agents import create_agent
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import tool
from pydantic import PrivateAttr

import langchain_runtime
from langchain_runtime import BudgetMiddleware
from langchain_runtime.agents.middleware import BUDGET_FINISH_REASON
from langchain_runtime.cost import CostCalculator, TokenEstimator
from langchain_runtime.cost.ledger import InMemoryLedger
from langchain_runtime.domain import Usage
from langchain_runtime.errors import BudgetExceededError, ConfigurationError
from tests.unit.agents.openai_api import MODEL, NO_LIMIT, URL, FakeOpenAI, chat_openai

D = Decimal
CALC = CostCalculator()
EST = TokenEstimator()
QUESTION = {"messages": [HumanMessage("Weather in Paris?")]}


@tool
def lookup(city: str) -> str:
    """Current temperature in a city."""
    return f"{city}: 20C"


@pytest.fixture
def api() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI()
    with respx.mock(assert_all_called=False) as router:
        router.post(URL).mock(side_effect=fake.answer)
        yield fake


def agent(budget: BudgetMiddleware, **model_kwargs: Any) -> Any:
    return create_agent(chat_openai(**model_kwargs), tools=[lookup], middleware=[budget])


def affordable(left: Decimal, input_tokens: int) -> int:
    inp, _, _, out = CALC.info(MODEL).rates(input_tokens)
    tokens = (left * 1_000_000 - input_tokens * inp) / out
    return int(tokens.to_integral_value(rounding=ROUND_FLOOR))


def first_input_tokens() -> int:
    return EST.count_messages(QUESTION["messages"], MODEL, [lookup])


# -- clamping ----------------------------------------------------------------------


def test_each_request_carries_the_output_the_budget_can_pay_for(api: FakeOpenAI) -> None:
    budget = BudgetMiddleware(max_cost="0.002")
    result = agent(budget).invoke(QUESTION)
    # what the HTTP request said: what $0.002 pays for after the counted input,
    # below the model's own 16,384-token maximum
    assert len(api.bodies) == 1
    sent = api.bodies[0]["max_completion_tokens"]
    assert sent == affordable(D("0.002"), first_input_tokens()) < 16_384
    # this provider answers as long as it may: that one call took all the money,
    # so the agent ends instead of sending a second one
    ran_out(result)
    assert budget.spent.amount == api.billed <= D("0.002")
    assert budget.usage == api.billed_usage


def test_the_models_own_limit_is_the_ceiling(api: FakeOpenAI) -> None:
    roomy = BudgetMiddleware(max_cost=10)
    agent(roomy).invoke(QUESTION)
    # no limit on the model: its maximum output (gpt-4o-mini: 16,384)
    assert [b["max_completion_tokens"] for b in api.bodies] == [16_384, 16_384]
    capped = BudgetMiddleware(max_cost=10)
    agent(capped, max_tokens=50).invoke(QUESTION)
    assert [b["max_completion_tokens"] for b in api.bodies[2:]] == [50, 50]


def test_a_token_budget_clamps_too(api: FakeOpenAI) -> None:
    budget = BudgetMiddleware(max_tokens=500)
    agent(budget).invoke(QUESTION)
    assert api.bodies[0]["max_completion_tokens"] == 500 - first_input_tokens()
    assert budget.usage.total_tokens <= 500


# -- running out ---------------------------------------------------------------------


def ran_out(result: dict[str, Any]) -> AIMessage:
    last = result["messages"][-1]
    assert isinstance(last, AIMessage)
    assert last.response_metadata["finish_reason"] == BUDGET_FINISH_REASON
    assert not last.tool_calls
    return last


def test_end_finishes_the_agent_with_a_message_and_sends_nothing_more(api: FakeOpenAI) -> None:
    # one call's input and a few tokens fit, the second call's input does not
    budget = BudgetMiddleware(max_tokens=first_input_tokens() + 5)
    result = agent(budget).invoke(QUESTION)
    assert len(api.bodies) == 1 and api.bodies[0]["max_completion_tokens"] == 5
    last = ran_out(result)
    used = budget.usage.total_tokens
    assert last.content == (
        f"The budget ran out: {used} of {first_input_tokens() + 5} tokens used; "
        "not even a minimal answer fits in what is left."
    )
    # the tool the first answer asked for still ran before the end
    assert [m.type for m in result["messages"]] == ["human", "ai", "tool", "ai"]


def test_end_reports_money_spent_and_the_limit(api: FakeOpenAI) -> None:
    budget = BudgetMiddleware(max_cost="0.0000001")
    result = agent(budget).invoke(QUESTION)
    assert api.bodies == []
    assert ran_out(result).content.startswith("The budget ran out: $0.000000 of $1E-7 spent")


def test_error_raises_before_sending(api: FakeOpenAI) -> None:
    budget = BudgetMiddleware(max_tokens=first_input_tokens() + 5, exit_behavior="error")
    with pytest.raises(BudgetExceededError) as err:
        agent(budget).invoke(QUESTION)
    assert len(api.bodies) == 1
    assert err.value.limit == first_input_tokens() + 5


def test_async_agents_are_clamped_and_ended_the_same_way(api: FakeOpenAI) -> None:
    budget = BudgetMiddleware(max_tokens=first_input_tokens() + 5)
    result = asyncio.run(agent(budget).ainvoke(QUESTION))
    assert api.bodies[0]["max_completion_tokens"] == 5
    ran_out(result)
    roomy = BudgetMiddleware(max_cost="0.002")
    asyncio.run(agent(roomy).ainvoke(QUESTION))
    assert api.bodies[1]["max_completion_tokens"] == affordable(D("0.002"), first_input_tokens())


def test_the_budget_is_cumulative_across_runs_until_reset(api: FakeOpenAI) -> None:
    budget = BudgetMiddleware(max_cost="0.02")
    graph = agent(budget)
    graph.invoke(QUESTION)  # two calls of up to 16,384 output tokens each
    spent_once = budget.spent.amount
    assert spent_once == api.billed
    assert budget.remaining is not None
    assert budget.remaining.amount == D("0.02") - spent_once
    result = graph.invoke(QUESTION)
    assert budget.spent.amount == api.billed <= D("0.02")
    assert ran_out(result)  # the second run found too little left
    budget.reset()
    assert budget.spent.amount == 0 and budget.usage == Usage()
    assert graph.invoke(QUESTION)["messages"][-1].content == "It is 20C."


# -- settling --------------------------------------------------------------------------


class Unmetered(BaseChatModel):
    """A chat model that reports no usage, takes Google's ``max_output_tokens``."""

    model_name: str = MODEL
    max_output_tokens: int | None = None
    fail: bool = False
    _seen: list[dict[str, Any]] = PrivateAttr(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "unmetered"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self._seen.append(kwargs)
        if self.fail:
            raise RuntimeError("provider exploded")
        return ChatResult(generations=[ChatGeneration(message=AIMessage("Revenue grew."))])


def test_the_limit_goes_under_the_providers_name_and_missing_usage_is_estimated() -> None:
    model = Unmetered()
    budget = BudgetMiddleware(max_tokens=1000)
    create_agent(model, middleware=[budget]).invoke(QUESTION)
    inp = EST.count_messages(QUESTION["messages"], MODEL)
    assert model._seen == [{"max_output_tokens": 1000 - inp}]
    assert budget.usage == Usage(
        input_tokens=inp, output_tokens=EST.count_text("Revenue grew.", MODEL), estimated=True
    )


def test_a_failed_call_is_charged_its_input_and_frees_its_reservation() -> None:
    budget = BudgetMiddleware(max_tokens=1000)
    with pytest.raises(RuntimeError, match="exploded"):
        create_agent(Unmetered(fail=True), middleware=[budget]).invoke(QUESTION)
    inp = EST.count_messages(QUESTION["messages"], MODEL)
    assert budget.usage == Usage(input_tokens=inp, estimated=True)
    assert budget.remaining_tokens == 1000 - inp
    assert budget.enforcer.reserved_tokens == 0


# -- construction ----------------------------------------------------------------------


def test_bad_arguments_are_refused_clearly() -> None:
    with pytest.raises(ConfigurationError, match="exit_behavior"):
        BudgetMiddleware(max_cost=1, exit_behavior="stop")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="need a shared ledger"):
        BudgetMiddleware(max_cost=1, scopes=("team:research",))
    with pytest.raises(ConfigurationError, match="must be a BudgetLedger"):
        BudgetMiddleware(max_cost=1, ledger=object(), scopes=("team:research",))  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="needs the scopes"):
        BudgetMiddleware(max_cost=1, ledger=InMemoryLedger())
    with pytest.raises(ConfigurationError, match="non-empty string"):
        BudgetMiddleware(max_cost=1, ledger=InMemoryLedger(), scopes=("",))
    budget = BudgetMiddleware(max_cost="0.5", max_tokens=100)
    assert budget.budget.max_cost == D("0.5") and budget.budget.max_tokens == 100
    assert budget.remaining is not None and budget.remaining.amount == D("0.5")
    assert budget.remaining_tokens == 100


def test_exported_at_the_top_level() -> None:
    from langchain_runtime.agents import BudgetMiddleware as Direct

    assert langchain_runtime.BudgetMiddleware is Direct
    assert "BudgetMiddleware" in langchain_runtime.__all__
    with pytest.raises(AttributeError, match="NoSuchThing"):
        langchain_runtime.NoSuchThing  # noqa: B018


def test_no_limit_answers_are_never_sent_unclamped(api: FakeOpenAI) -> None:
    # the mock would answer NO_LIMIT tokens to a request without a limit
    budget = BudgetMiddleware(max_cost="0.001")
    agent(budget).invoke(QUESTION)
    assert all(isinstance(b.limit, int) for b in api.bills)
    assert all(b.usage.output_tokens < NO_LIMIT for b in api.bills)
    assert api.billed <= D("0.001")


def test_the_respx_route_is_real_http() -> None:
    # guards the fixture itself: ChatOpenAI really reaches respx (openai<3)
    fake = FakeOpenAI()
    with respx.mock() as router:
        route = router.post(URL).mock(side_effect=fake.answer)
        chat_openai(max_tokens=3).invoke("hi")
        assert route.call_count == 1
        assert isinstance(route.calls.last.request, httpx.Request)


@pytest.mark.parametrize("path", ["stream", "astream"])
def test_streamed_agents_are_clamped_and_settled(api: FakeOpenAI, path: str) -> None:
    budget = BudgetMiddleware(max_cost="0.002")
    graph = agent(budget, streaming=True)

    async def consume() -> list[Any]:
        return [c async for c in graph.astream(QUESTION, stream_mode="messages")]

    if path == "stream":
        chunks = list(graph.stream(QUESTION, stream_mode="messages"))
    else:
        chunks = asyncio.run(consume())
    assert chunks  # the model's tokens reached the caller
    assert api.bodies[0]["stream"] is True
    assert api.bodies[0]["max_completion_tokens"] == affordable(D("0.002"), first_input_tokens())
    # usage came in the stream's last chunk and was settled as reported
    assert budget.spent.amount == api.billed <= D("0.002")
    assert not budget.usage.estimated


def test_without_langchain_the_error_says_what_to_install() -> None:
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['langchain'] = None\n"
        "import langchain_runtime\n"
        "try:\n"
        "    langchain_runtime.BudgetMiddleware\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert "pip install 'langchain-runtime[agents]'" in out.stdout


def test_a_model_the_catalog_has_no_maximum_for_uses_its_profile(api: FakeOpenAI) -> None:
    from langchain_runtime.cost import ModelCatalog

    catalog = ModelCatalog.default()
    catalog.add("gpt-3.5-turbo", input=0.5, output=1.5)  # priced, no max_output_tokens
    budget = BudgetMiddleware(max_cost=10, catalog=catalog)
    model = chat_openai("gpt-3.5-turbo")
    create_agent(model, middleware=[budget]).invoke(QUESTION)
    assert model.profile is not None and model.profile["max_output_tokens"] == 4096
    assert api.bodies[0]["max_completion_tokens"] == 4096


def test_without_limits_it_only_tracks_and_leaves_requests_alone(api: FakeOpenAI) -> None:
    budget = BudgetMiddleware()
    agent(budget).invoke(QUESTION)
    assert all("max_completion_tokens" not in b for b in api.bodies)
    assert budget.spent.amount == api.billed > 0
    assert budget.remaining is None and budget.remaining_tokens is None
