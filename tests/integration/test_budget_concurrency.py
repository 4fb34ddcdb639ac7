"""Property: many concurrent model calls under one budget never overspend it.

Calls run in threads and in asyncio tasks, with random prompts, random ``max_tokens``
and random real output (never above ``max_tokens``, as providers guarantee), under a
budget that fits only some of them. Whatever the interleaving:

* the money spent never exceeds the budget, and equals the sum of the calls made;
* in the order calls actually started, every prefix costs at most the budget -- a
  call never starts when what has started already plus itself would not fit;
* when a call starts, its own reservation is counted and the budget still holds;
* every refusal was justified: what was committed plus the call's estimate crossed
  the limit.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import RunnableLambda
from pydantic import PrivateAttr

from langchain_runtime.cost import BudgetedRunnable, CostCalculator, TokenEstimator, with_budget
from langchain_runtime.domain import Usage
from langchain_runtime.errors import BudgetExceededError

MODEL = "gpt-4o-mini"
EST = TokenEstimator()
CALC = CostCalculator()


@dataclass(frozen=True)
class Call:
    index: int
    words: int
    max_tokens: int
    output: int  # tokens the "provider" will really produce (<= max_tokens)

    def messages(self) -> list[BaseMessage]:
        return [HumanMessage(f"call {self.index}: " + "word " * self.words)]

    def reservation(self) -> Decimal:
        inp = EST.count_messages(self.messages(), MODEL)
        return CALC.estimate(MODEL, inp, self.max_tokens).amount


class MeteredModel(BaseChatModel):
    """Reports input exactly as estimated and the scripted output; logs every start."""

    model_name: str = MODEL
    _outputs: dict[str, int] = PrivateAttr(default_factory=dict)
    _log: list[tuple[int, Decimal]] = PrivateAttr(default_factory=list)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _wrapped: Any = PrivateAttr(default=None)
    _violations: list[str] = PrivateAttr(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "metered"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name}

    def _start(self, messages: list[BaseMessage]) -> tuple[ChatResult, float]:
        text = str(messages[-1].content)
        index = int(text.split(":")[0].split()[1])
        out = self._outputs[str(index)]
        usage = Usage(input_tokens=EST.count_messages(messages, MODEL), output_tokens=out)
        cost = CALC.cost(MODEL, usage).amount
        wrapped: BudgetedRunnable[Any, Any] = self._wrapped
        with self._lock:
            self._log.append((index, cost))
            remaining = wrapped.remaining
            if remaining is None or remaining.amount < 0:
                self._violations.append(f"call {index} started with remaining={remaining}")
        msg = AIMessage(
            "x",
            usage_metadata={
                "input_tokens": usage.input_tokens,
                "output_tokens": out,
                "total_tokens": usage.input_tokens + out,
            },
        )
        return ChatResult(generations=[ChatGeneration(message=msg)]), random.random() / 500

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        result, delay = self._start(messages)
        time.sleep(delay)
        return result

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        result, delay = self._start(messages)
        await asyncio.sleep(delay)
        return result


calls_strategy = st.lists(
    st.tuples(
        st.integers(1, 150),  # prompt words
        st.integers(1, 400),  # max_tokens
        st.floats(0, 1),  # share of max_tokens really produced
    ),
    min_size=2,
    max_size=40,
)


def scenario(
    raw: list[tuple[int, int, float]], fraction: float
) -> tuple[list[Call], MeteredModel, BudgetedRunnable[Call, Any], Decimal]:
    calls = [
        Call(i, words, max_tokens, int(max_tokens * share))
        for i, (words, max_tokens, share) in enumerate(raw)
    ]
    model = MeteredModel()
    model._outputs.update({str(c.index): c.output for c in calls})
    limit = (sum(c.reservation() for c in calls) * Decimal(str(fraction))).quantize(
        Decimal("0.000000001")
    )

    def run(call: Call) -> Any:
        return model.invoke(call.messages(), max_tokens=call.max_tokens)

    async def arun(call: Call) -> Any:
        return await model.ainvoke(call.messages(), max_tokens=call.max_tokens)

    wrapped = with_budget(RunnableLambda(run, afunc=arun), max_cost=limit)
    model._wrapped = wrapped
    return calls, model, wrapped, limit


def check(
    calls: list[Call],
    model: MeteredModel,
    wrapped: BudgetedRunnable[Call, Any],
    limit: Decimal,
    outcomes: list[Any],
) -> None:
    assert not model._violations, model._violations
    started = model._log
    # Spent never exceeds the budget, and is exactly what the calls that ran cost.
    assert wrapped.spent.amount <= limit
    assert wrapped.spent.amount == sum((cost for _, cost in started), Decimal(0))
    assert wrapped.handler.reserved.amount == 0
    # In start order, no prefix of started calls costs more than the budget.
    total = Decimal(0)
    for index, cost in started:
        total += cost
        assert total <= limit, f"call {index} started although it no longer fitted"
    # Exactly the calls that were not refused ran, each once.
    refused = {c.index for c, o in zip(calls, outcomes, strict=True) if isinstance(o, Exception)}
    assert sorted(i for i, _ in started) == sorted(set(range(len(calls))) - refused)
    for call, outcome in zip(calls, outcomes, strict=True):
        if isinstance(outcome, Exception):
            assert isinstance(outcome, BudgetExceededError), outcome
            assert outcome.spent is not None
            assert Decimal(outcome.spent) + call.reservation() > limit


@settings(max_examples=25, deadline=None)
@given(raw=calls_strategy, fraction=st.floats(0.05, 0.9))
def test_parallel_threads_never_overspend(
    raw: list[tuple[int, int, float]], fraction: float
) -> None:
    calls, model, wrapped, limit = scenario(raw, fraction)

    def one(call: Call) -> Any:
        try:
            return wrapped.invoke(call)
        except BudgetExceededError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(one, calls))
    check(calls, model, wrapped, limit, outcomes)


@settings(max_examples=25, deadline=None)
@given(raw=calls_strategy, fraction=st.floats(0.05, 0.9))
def test_parallel_asyncio_tasks_never_overspend(
    raw: list[tuple[int, int, float]], fraction: float
) -> None:
    calls, model, wrapped, limit = scenario(raw, fraction)

    async def main() -> list[Any]:
        return await asyncio.gather(*(wrapped.ainvoke(c) for c in calls), return_exceptions=True)

    outcomes = asyncio.run(main())
    check(calls, model, wrapped, limit, outcomes)


def test_a_budget_that_fits_some_calls_refuses_the_rest() -> None:
    raw = [(20, 100, 1.0)] * 30
    calls, model, wrapped, limit = scenario(raw, 0.5)
    outcomes = wrapped.batch(calls, config={"max_concurrency": 8}, return_exceptions=True)
    check(calls, model, wrapped, limit, outcomes)
    ran = len(model._log)
    assert ran == 15  # identical calls, exact usage: half the budget, half the calls
    assert sum(isinstance(o, BudgetExceededError) for o in outcomes) == 15
