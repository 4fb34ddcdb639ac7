"""with_budget: one cumulative budget over any Runnable, on every call path."""

from __future__ import annotations

import asyncio
import gc
import warnings
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import BaseMessage, HumanMessage
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda

from langchain_runtime.cost import BudgetedRunnable, TokenEstimator, with_budget
from langchain_runtime.domain import Budget, Usage
from langchain_runtime.errors import BudgetExceededError
from tests.unit.cost.fakes import ScriptedChatModel, answers

D = Decimal
EST = TokenEstimator()
PROMPT = ChatPromptTemplate.from_messages([("human", "Tell me about {topic}.")])
IN_TOKENS = EST.count_messages([HumanMessage("Tell me about cats.")], "gpt-4o-mini")


def chain_under_budget(calls_that_fit: int) -> tuple[BudgetedRunnable[Any, Any], ScriptedChatModel]:
    """A prompt | model chain whose budget fits exactly ``calls_that_fit`` calls."""
    model = ScriptedChatModel(responses=answers(1, inp=IN_TOKENS, out=10))
    per_call = IN_TOKENS + 10
    wrapped = with_budget(
        PROMPT | model, max_tokens=per_call * calls_that_fit, expected_output_tokens=10
    )
    return wrapped, model


def test_the_budget_accumulates_across_invocations_and_reset_starts_over() -> None:
    wrapped, model = chain_under_budget(2)
    wrapped.invoke({"topic": "cats"})
    wrapped.invoke({"topic": "cats"})
    assert wrapped.usage == Usage(input_tokens=2 * IN_TOKENS, output_tokens=20)
    assert wrapped.remaining_tokens == 0
    with pytest.raises(BudgetExceededError):
        wrapped.invoke({"topic": "cats"})
    assert model.calls == 2
    wrapped.reset()
    wrapped.invoke({"topic": "cats"})
    assert model.calls == 3


@pytest.mark.parametrize("path", ["invoke", "ainvoke", "stream", "astream", "batch", "abatch"])
def test_every_path_is_budgeted(path: str) -> None:
    wrapped, model = chain_under_budget(2)
    inp = {"topic": "cats"}

    async def astream_all() -> list[Any]:
        return [c async for c in wrapped.astream(inp)]

    run = {
        "invoke": lambda: wrapped.invoke(inp),
        "ainvoke": lambda: asyncio.run(wrapped.ainvoke(inp)),
        "stream": lambda: list(wrapped.stream(inp)),
        "astream": lambda: asyncio.run(astream_all()),
        "batch": lambda: wrapped.batch([inp]),
        "abatch": lambda: asyncio.run(wrapped.abatch([inp])),
    }[path]
    run()
    run()
    with pytest.raises(BudgetExceededError):
        run()
    assert model.calls == 2
    assert wrapped.usage.total_tokens == 2 * (IN_TOKENS + 10)
    assert wrapped.handler.reserved.amount == 0


def test_batch_with_return_exceptions_reports_refusals() -> None:
    wrapped, model = chain_under_budget(3)
    inputs = [{"topic": "cats"}] * 5
    out = wrapped.batch(inputs, config={"max_concurrency": 1}, return_exceptions=True)
    assert sum(isinstance(o, BudgetExceededError) for o in out) == 2
    assert model.calls == 3


def test_cost_budget_over_a_chat_model_clamps_the_last_call() -> None:
    model = ScriptedChatModel(responses=answers(1, inp=1000, out=500))
    wrapped = with_budget(model, max_cost=0.00095)
    assert wrapped.budget.max_cost == D("0.00095")
    wrapped.invoke("hi")
    wrapped.invoke("hi")
    assert wrapped.spent.amount == D("0.0009")
    assert wrapped.remaining is not None and wrapped.remaining.amount == D("0.00005")
    held = EST.count_messages([HumanMessage("hi")], "gpt-4o-mini")

    def affordable(left: str) -> int:
        return int((D(left) * 10**6 - held * D("0.15")) / D("0.60"))

    # gpt-4o-mini's 16,384-token maximum costs more than the budget: every call is
    # sent with the output the money left can pay for after its input
    assert [kw["max_tokens"] for kw in model.seen_kwargs] == [
        affordable("0.00095"),
        affordable("0.0005"),
    ]
    wrapped.invoke("hi")
    assert model.seen_kwargs[2]["max_tokens"] == affordable("0.00005") > 0
    assert model.calls == 3
    # this fake ignores max_tokens and reports 500 output tokens: the budget is now
    # overrun, and the next call is refused before it is sent
    with pytest.raises(BudgetExceededError) as err:
        wrapped.invoke("hi")
    assert err.value.limit == D("0.00095")
    assert model.calls == 3
    assert wrapped.by_model()["gpt-4o-mini"].calls == 3


def test_calls_made_inside_plain_functions_are_budgeted() -> None:
    model = ScriptedChatModel(responses=answers(1, inp=IN_TOKENS, out=10))

    def two_calls(topic: str) -> str:
        first = model.invoke(f"Tell me about {topic}.")
        second = model.invoke(f"Tell me about {topic}.")
        return f"{first.text} {second.text}"

    # calls with no max_tokens inside a function reserve the model's maximum output
    wrapped = with_budget(RunnableLambda(two_calls), max_tokens=40_000)
    assert wrapped.invoke("cats") == "ok ok"
    assert wrapped.usage.output_tokens == 20


def test_callers_callbacks_and_parent_chains_are_kept() -> None:
    seen: list[str] = []

    class Recorder(BaseCallbackHandler):
        def on_chat_model_start(self, *args: Any, **kwargs: Any) -> None:
            seen.append("start")

    wrapped, _ = chain_under_budget(5)
    outer = RunnableLambda(lambda x: x) | wrapped | RunnableLambda(lambda m: m.text)
    assert outer.invoke({"topic": "cats"}, config={"callbacks": [Recorder()]}) == "ok"
    assert seen == ["start"]
    assert wrapped.usage.output_tokens == 10
    # The handler passed explicitly is not added a second time (no double charge).
    wrapped.invoke({"topic": "cats"}, config={"callbacks": [wrapped.handler]})
    assert wrapped.usage.output_tokens == 20


def test_reservations_left_open_by_a_failing_sibling_handler_are_released() -> None:
    class Veto(BaseCallbackHandler):
        raise_error = True

        def on_chat_model_start(
            self, serialized: Any, messages: list[list[BaseMessage]], *, run_id: UUID, **kw: Any
        ) -> None:
            raise PermissionError("vetoed by policy")

    wrapped, model = chain_under_budget(1)
    with pytest.raises(PermissionError):
        # Our handler runs first and reserves; the veto stops the call, and LangChain
        # sends neither an end nor an error event to us.
        wrapped.invoke({"topic": "cats"}, config={"callbacks": [wrapped.handler, Veto()]})
    assert model.calls == 0
    assert wrapped.handler.reserved.amount == 0 and wrapped.handler.enforcer.reserved_tokens == 0
    wrapped.invoke({"topic": "cats"})  # the full budget is still there
    assert model.calls == 1


def test_astream_events_runs_under_the_budget() -> None:
    wrapped, model = chain_under_budget(1)

    async def events() -> list[str]:
        return [e["event"] async for e in wrapped.astream_events({"topic": "cats"}, version="v2")]

    kinds = asyncio.run(events())
    assert "on_chat_model_end" in kinds
    with warnings.catch_warnings():
        # langchain-core awaits inline handlers first; when ours refuses the call, the
        # event-stream handler's start coroutine is never awaited (a harmless warning).
        warnings.filterwarnings("ignore", "coroutine 'ahandle_event'", RuntimeWarning)
        with pytest.raises(BudgetExceededError):
            asyncio.run(events())
        gc.collect()
    assert model.calls == 1


def test_the_wrapper_describes_what_it_wraps() -> None:
    wrapped, _ = chain_under_budget(1)
    bound = wrapped.bound
    assert wrapped.get_name() == bound.get_name()
    assert wrapped.get_input_jsonschema() == bound.get_input_jsonschema()
    assert wrapped.InputType == bound.InputType
    assert wrapped.OutputType == bound.OutputType
    assert wrapped.get_output_jsonschema() == bound.get_output_jsonschema()
    names = {n.name for n in wrapped.get_graph().nodes.values()}
    assert names == {n.name for n in bound.get_graph().nodes.values()}
    assert wrapped.config_specs == bound.config_specs


def test_arguments_are_checked() -> None:
    model = ScriptedChatModel(responses=answers(1))
    with pytest.raises(ValueError, match="either"):
        with_budget(model, budget=Budget(max_tokens=1), max_cost=1)
    wrapped = with_budget(model, budget=Budget(max_tokens=5000, expected_output_tokens=7))
    assert wrapped.budget.expected_output_tokens == 7
    assert with_budget(model).remaining is None


# -- a chat model under with_budget: each call's output limit is clamped --------------


def test_a_binding_of_a_chat_model_is_clamped_too() -> None:
    model = ScriptedChatModel(responses=answers(3, inp=IN_TOKENS, out=10))
    wrapped = with_budget(model.bind(seed=7), max_tokens=IN_TOKENS + 100)
    wrapped.invoke("Tell me about cats.")
    assert model.seen_kwargs[-1] == {"seed": 7, "max_tokens": 100}
    # a limit given for the call is the ceiling
    wrapped.reset()
    wrapped.invoke("Tell me about cats.", max_tokens=7)
    assert model.seen_kwargs[-1]["max_tokens"] == 7


def test_one_reservation_per_call_adopted_by_the_handler() -> None:
    held: list[int] = []

    class Probe(ScriptedChatModel):
        def _generate(self, *args: Any, **kwargs: Any) -> Any:
            held.append(wrapped.handler.enforcer.reserved_tokens)
            return super()._generate(*args, **kwargs)

    model = Probe(responses=answers(1, inp=IN_TOKENS, out=10))
    wrapped = with_budget(model, max_tokens=IN_TOKENS + 100)
    wrapped.invoke("Tell me about cats.")
    # while the call ran, only its own clamped reservation was held (not two)
    assert held == [IN_TOKENS + 100]
    assert wrapped.handler.tracker.calls == 1
    assert wrapped.handler.enforcer.reserved_tokens == 0
    assert wrapped.remaining_tokens == 100 - 10


def test_a_chat_model_call_that_cannot_get_one_token_is_refused_unsent() -> None:
    model = ScriptedChatModel(responses=answers(1))
    wrapped = with_budget(model, max_tokens=IN_TOKENS)
    with pytest.raises(BudgetExceededError, match="up to 1 output"):
        wrapped.invoke("Tell me about cats.")
    assert model.calls == 0
    assert wrapped.handler.enforcer.reserved_tokens == 0


def test_no_limit_no_clamp() -> None:
    model = ScriptedChatModel(responses=answers(1))
    with_budget(model).invoke("Tell me about cats.")
    assert "max_tokens" not in model.seen_kwargs[-1]


def test_the_callers_run_id_is_kept() -> None:
    model = ScriptedChatModel(responses=answers(1))
    wrapped = with_budget(model, max_tokens=IN_TOKENS + 50)
    run_id = UUID(int=42)
    wrapped.invoke("Tell me about cats.", config={"run_id": run_id})
    assert wrapped.handler.tracker.get(run_id) is not None
