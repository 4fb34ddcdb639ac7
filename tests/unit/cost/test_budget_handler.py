"""BudgetCallbackHandler on real LangChain call paths, with scripted fake models."""

from __future__ import annotations

import asyncio
import threading
from decimal import Decimal
from typing import Any

import pytest
from langchain_core.language_models import FakeListLLM
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, Generation, LLMResult

from langchain_runtime.cost import BudgetCallbackHandler, BudgetEnforcer, TokenEstimator
from langchain_runtime.cost.handler import usage_from_result
from langchain_runtime.domain import Budget, Usage
from langchain_runtime.errors import BudgetExceededError, ConfigurationError
from tests.unit.cost.fakes import ScriptedChatModel, answers, usage

D = Decimal
EST = TokenEstimator()
PROMPT = [HumanMessage("Summarise the quarterly report in one line.")]
PROMPT_TOKENS = EST.count_messages(PROMPT, "gpt-4o-mini")


def mini(inp: int, out: int) -> Decimal:
    return (inp * D("0.15") + out * D("0.60")) / 1_000_000


def cfg(handler: BudgetCallbackHandler, **metadata: Any) -> Any:
    return {"callbacks": [handler], "metadata": metadata}


# -- settling ------------------------------------------------------------------------


def test_reported_usage_is_recorded_and_priced() -> None:
    msg = AIMessage("ok", usage_metadata=usage(120, 30, cache_read=100, reasoning=10))  # type: ignore[arg-type]
    model = ScriptedChatModel(responses=[msg])
    handler = BudgetCallbackHandler(Budget(max_cost=D(1)))
    model.invoke(PROMPT, config=cfg(handler))
    expected = Usage(input_tokens=120, output_tokens=30, cache_read_tokens=100, reasoning_tokens=10)
    assert handler.usage == expected
    assert handler.spent.amount == (20 * D("0.15") + 100 * D("0.075") + 30 * D("0.60")) / 10**6
    assert handler.reserved.amount == 0
    assert handler.remaining is not None
    assert handler.remaining.amount == D(1) - handler.spent.amount
    assert handler.by_model()["gpt-4o-mini"].calls == 1


def run_path(model: ScriptedChatModel, path: str, config: Any) -> None:
    """Call ``model`` on ``PROMPT`` the way ``path`` says."""
    if path == "invoke":
        model.invoke(PROMPT, config=config)
    elif path == "ainvoke":
        asyncio.run(model.ainvoke(PROMPT, config=config))
    elif path == "stream":
        list(model.stream(PROMPT, config=config))
    else:

        async def consume() -> None:
            async for _ in model.astream(PROMPT, config=config):
                pass

        asyncio.run(consume())


PATHS = ["invoke", "ainvoke", "stream", "astream"]


@pytest.mark.parametrize("path", PATHS)
def test_every_call_path_settles_the_reported_usage(path: str) -> None:
    model = ScriptedChatModel(responses=answers(1, inp=111, out=22))
    # no max_tokens: the call reserves gpt-4o-mini's maximum output (16,384 tokens)
    handler = BudgetCallbackHandler(Budget(max_tokens=20_000))
    run_path(model, path, cfg(handler))
    assert handler.usage == Usage(input_tokens=111, output_tokens=22)
    assert handler.remaining_tokens == 20_000 - 133
    assert not handler.usage.estimated


def test_missing_usage_is_estimated() -> None:
    model = ScriptedChatModel(responses=[AIMessage("Revenue grew twelve percent.")])
    handler = BudgetCallbackHandler(Budget(max_tokens=20_000))
    model.invoke(PROMPT, config=cfg(handler))
    assert handler.usage == Usage(
        input_tokens=PROMPT_TOKENS,
        output_tokens=EST.count_text("Revenue grew twelve percent."),
        estimated=True,
    )


def test_a_failed_call_is_charged_its_input_estimate() -> None:
    model = ScriptedChatModel(responses=answers(1), fail_with="provider exploded")
    handler = BudgetCallbackHandler(Budget(max_cost=D(1)))
    with pytest.raises(RuntimeError, match="provider exploded"):
        model.invoke(PROMPT, config=cfg(handler))
    assert handler.usage == Usage(input_tokens=PROMPT_TOKENS, estimated=True)
    assert handler.spent.amount == mini(PROMPT_TOKENS, 0)
    assert handler.reserved.amount == 0


# -- refusing ------------------------------------------------------------------------


@pytest.mark.parametrize("path", PATHS)
def test_a_call_that_does_not_fit_is_refused_before_the_model_runs(path: str) -> None:
    model = ScriptedChatModel(responses=answers(1))
    # Room for the prompt but not for the 1024 expected output tokens.
    handler = BudgetCallbackHandler(Budget(max_cost=mini(PROMPT_TOKENS + 1000, 1000)))
    handler.enforcer.reserve("other", "gpt-4o-mini", 1000, 0)
    with pytest.raises(BudgetExceededError) as err:
        run_path(model, path, cfg(handler, lcr_task_id="summary"))
    assert model.calls == 0
    assert err.value.task_id == "summary"
    assert err.value.spent == mini(1000, 0)
    assert handler.reserved.amount == mini(1000, 0)  # only the other call's hold
    assert handler.release_pending() == 0  # nothing left behind by the refusal


def test_max_tokens_of_the_call_sizes_the_reservation() -> None:
    budget = Budget(max_tokens=PROMPT_TOKENS + 50)
    for key in ("max_tokens", "max_completion_tokens", "max_output_tokens"):
        model = ScriptedChatModel(responses=answers(1, inp=PROMPT_TOKENS, out=5))
        handler = BudgetCallbackHandler(budget)
        # without a limit the call reserves the model's maximum output, and says so
        with pytest.raises(BudgetExceededError, match="up to 16384 output") as err:
            model.invoke(PROMPT, config=cfg(handler))
        assert "the model's maximum output (16384 tokens)" in str(err.value)
        assert "Set max_tokens on the model" in str(err.value)
        assert "BudgetMiddleware" in str(err.value)
        model.bind(**{key: 50}).invoke(PROMPT, config=cfg(handler))
        assert model.calls == 1, key


def test_expected_output_tokens_is_used_without_max_tokens() -> None:
    model = ScriptedChatModel(responses=answers(1, inp=PROMPT_TOKENS, out=5))
    handler = BudgetCallbackHandler(
        Budget(max_tokens=PROMPT_TOKENS + 64, expected_output_tokens=64)
    )
    model.invoke(PROMPT, config=cfg(handler))
    assert model.calls == 1


def test_tool_schemas_in_the_call_count_as_input() -> None:
    schema = {
        "type": "function",
        "function": {
            "name": "search_the_knowledge_base",
            "description": "Search the internal knowledge base for documents. " * 5,
            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
        },
    }
    tools_tokens = EST.count_tools([schema], "gpt-4o-mini")
    budget = Budget(max_tokens=PROMPT_TOKENS + 10 + tools_tokens - 1)
    model = ScriptedChatModel(responses=answers(1))
    handler = BudgetCallbackHandler(budget)
    model.bind(max_tokens=10).invoke(PROMPT, config=cfg(handler))  # fits without tools
    handler.reset()
    with pytest.raises(BudgetExceededError):
        model.bind(max_tokens=10, tools=[schema]).invoke(PROMPT, config=cfg(handler))


# -- which model, which task ---------------------------------------------------------


def test_model_from_invocation_params() -> None:
    model = ScriptedChatModel(responses=answers(1, 1000, 100), model_name="gpt-4o")
    handler = BudgetCallbackHandler(Budget(max_cost=D(1)), default_model="gpt-5")
    model.invoke(PROMPT, config=cfg(handler, lcr_model="o3"))
    assert list(handler.by_model()) == ["gpt-4o"]
    assert handler.spent.amount == (1000 * D("2.5") + 100 * D("10")) / 10**6


def test_model_from_task_metadata_then_default() -> None:
    anonymous = ScriptedChatModel(responses=answers(2, 1000, 100), model_name=None)
    # gpt-5 reserves its 128,000-token maximum output ($1.28) for a call without a limit
    handler = BudgetCallbackHandler(Budget(max_cost=D(2)), default_model="gpt-5")
    anonymous.invoke(PROMPT, config=cfg(handler, lcr_model="o3", lcr_task_id="plan"))
    anonymous.invoke(PROMPT, config=cfg(handler, lcr_task_id="write"))
    assert set(handler.by_model()) == {"o3", "gpt-5"}
    assert handler.by_task()["plan"].cost.amount == (1000 * D(2) + 100 * D(8)) / 10**6
    assert handler.by_task()["write"].cost.amount == (1000 * D("1.25") + 100 * D(10)) / 10**6


def test_unknown_model_under_a_cost_budget_is_a_configuration_error() -> None:
    anonymous = ScriptedChatModel(responses=answers(1), model_name=None)
    handler = BudgetCallbackHandler(Budget(max_cost=D(1)))
    with pytest.raises(ConfigurationError, match="default_model"):
        anonymous.invoke(PROMPT, config=cfg(handler))
    unpriced = ScriptedChatModel(responses=answers(1), model_name="acme-secret-1")
    with pytest.raises(ConfigurationError, match="acme-secret-1"):
        unpriced.invoke(PROMPT, config=cfg(handler))
    assert anonymous.calls == unpriced.calls == 0
    assert handler.reserved.amount == 0


def test_text_llms_are_budgeted_too() -> None:
    llm = FakeListLLM(responses=["a short answer"])
    handler = BudgetCallbackHandler(Budget(max_tokens=20_000), default_model="gpt-4o-mini")
    llm.invoke("What is the capital of France?", config=cfg(handler))
    assert handler.usage == Usage(
        input_tokens=EST.count_text("What is the capital of France?"),
        output_tokens=EST.count_text("a short answer"),
        estimated=True,
    )
    tiny = BudgetCallbackHandler(Budget(max_tokens=5), default_model="gpt-4o-mini")
    with pytest.raises(BudgetExceededError):
        llm.invoke("What is the capital of France?", config=cfg(tiny))


def test_shared_enforcer_and_constructor_checks() -> None:
    enforcer = BudgetEnforcer(Budget(max_tokens=20_000))
    a = BudgetCallbackHandler(enforcer=enforcer)
    b = BudgetCallbackHandler(enforcer=enforcer)
    model = ScriptedChatModel(responses=answers(2, 100, 10))
    model.invoke(PROMPT, config=cfg(a))
    model.invoke(PROMPT, config=cfg(b))
    assert enforcer.usage.total_tokens == 220 == a.usage.total_tokens
    with pytest.raises(ValueError, match="either"):
        BudgetCallbackHandler(Budget(), enforcer=enforcer)
    assert BudgetCallbackHandler().remaining is None  # tracking only


# -- reading usage from results ------------------------------------------------------


def test_usage_from_result_counts_each_prompt_once() -> None:
    md = usage(10, 5)
    two_candidates = LLMResult(
        generations=[
            [
                ChatGeneration(message=AIMessage("a", usage_metadata=md)),  # type: ignore[arg-type]
                ChatGeneration(message=AIMessage("b", usage_metadata=md)),  # type: ignore[arg-type]
            ]
        ]
    )
    assert usage_from_result(two_candidates) == Usage(input_tokens=10, output_tokens=5)
    assert usage_from_result(LLMResult(generations=[[Generation(text="x")]])) is None
    assert usage_from_result(None) is None


def test_usage_from_raw_provider_dicts() -> None:
    openai_style = LLMResult(
        generations=[[Generation(text="x")]],
        llm_output={
            "token_usage": {
                "prompt_tokens": 11,
                "completion_tokens": 7,
                "total_tokens": 18,
                "prompt_tokens_details": {"cached_tokens": 4, "audio_tokens": None},
                "completion_tokens_details": {"reasoning_tokens": 2},
            }
        },
    )
    assert usage_from_result(openai_style) == Usage(
        input_tokens=11, output_tokens=7, cache_read_tokens=4, reasoning_tokens=2
    )
    anthropic_style = LLMResult(
        generations=[[Generation(text="x")]],
        llm_output={
            "usage": {
                "input_tokens": 10,
                "output_tokens": 3,
                "cache_read_input_tokens": 100,
                "cache_creation_input_tokens": 20,
            }
        },
    )
    assert usage_from_result(anthropic_style) == Usage(
        input_tokens=130, output_tokens=3, cache_read_tokens=100, cache_creation_tokens=20
    )


# -- concurrency ---------------------------------------------------------------------


def test_concurrent_calls_in_threads_are_each_counted_once() -> None:
    per_call = PROMPT_TOKENS + 10  # reported usage == reservation
    model = ScriptedChatModel(responses=answers(1, PROMPT_TOKENS, 10))
    handler = BudgetCallbackHandler(Budget(max_tokens=per_call * 30 + 5, expected_output_tokens=10))
    refused: list[BaseException] = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        for _ in range(10):
            try:
                model.invoke(PROMPT, config=cfg(handler))
            except BudgetExceededError as exc:
                refused.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert model.calls == 30 and len(refused) == 50
    assert handler.usage == Usage(input_tokens=30 * PROMPT_TOKENS, output_tokens=300)
    assert handler.tracker.calls == 30
    assert handler.enforcer.reserved_tokens == 0


def test_per_task_limits_apply_to_calls_tagged_with_the_task() -> None:
    model = ScriptedChatModel(responses=answers(3, PROMPT_TOKENS, 10))
    per_call = PROMPT_TOKENS + 10
    handler = BudgetCallbackHandler(
        Budget(max_tokens=100 * per_call, expected_output_tokens=10),
        per_task={"draft": Budget(max_tokens=per_call)},
    )
    model.invoke(PROMPT, config=cfg(handler, lcr_task_id="draft"))
    with pytest.raises(BudgetExceededError) as err:
        model.invoke(PROMPT, config=cfg(handler, lcr_task_id="draft"))
    assert err.value.task_id == "draft" and "task 'draft'" in str(err.value)
    model.invoke(PROMPT, config=cfg(handler, lcr_task_id="review"))  # other tasks go on
    assert model.calls == 2
    assert handler.by_task()["draft"].calls == handler.by_task()["review"].calls == 1


def test_without_a_limit_the_models_profile_maximum_is_reserved() -> None:
    from langchain_openai import ChatOpenAI

    from langchain_runtime.cost import ModelCatalog

    # gpt-3.5-turbo's price is known here but not its maximum output: the model
    # profile that langchain-openai ships says 4,096
    catalog = ModelCatalog.default()
    catalog.add("gpt-3.5-turbo", input=0.5, output=1.5)
    assert catalog.get("gpt-3.5-turbo").max_output_tokens is None
    handler = BudgetCallbackHandler(Budget(max_tokens=4000), catalog=catalog)
    model = ChatOpenAI(model="gpt-3.5-turbo", api_key="sk-test", max_retries=0)  # type: ignore[arg-type]
    with pytest.raises(BudgetExceededError, match="up to 4096 output"):
        model.invoke("hello", config={"callbacks": [handler]})  # refused: nothing is sent
