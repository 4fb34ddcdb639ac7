"""Budget decisions reach the model-call span through the budget-event hook.

``HookedBudget`` is the budget handler's decision points with the three hook calls
the real ``BudgetCallbackHandler`` makes (reserve, refuse, settle) on a real
``BudgetEnforcer``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from opentelemetry.trace import StatusCode

from langchain_runtime import Budget, BudgetEnforcer, BudgetExceededError
from langchain_runtime.domain import Usage
from langchain_runtime.observability import BudgetEvent, add_budget_listener
from langchain_runtime.observability import _budget_events as budget_events
from langchain_runtime.testing import SimulatedChatModel
from tests.unit.observability.conftest import Telemetry


class HookedBudget(BaseCallbackHandler):
    raise_error = True
    run_inline = True

    def __init__(self, budget: Budget) -> None:
        self.enforcer = BudgetEnforcer(budget)

    def on_chat_model_start(
        self, serialized: Any, messages: Any, *, run_id: UUID, **kw: Any
    ) -> None:
        try:
            res = self.enforcer.reserve(run_id, "simulated", 50, 100)
        except BudgetExceededError as exc:
            budget_events.refused(run_id, exc, model="simulated")
            raise
        budget_events.reserved(run_id, res)

    def on_llm_end(self, response: Any, *, run_id: UUID, **kw: Any) -> None:
        usage = Usage.from_usage_metadata(response.generations[0][0].message.usage_metadata)
        cost = self.enforcer.settle(run_id, usage, model="simulated")
        budget_events.settled(run_id, usage, cost, model="simulated")


@pytest.mark.parametrize("otel_first", [True, False])
def test_reserve_and_settle_are_events_on_the_call_span(
    telemetry: Telemetry, otel_first: bool
) -> None:
    budget = HookedBudget(Budget(max_cost=Decimal("1")))
    handlers = [telemetry.handler, budget] if otel_first else [budget, telemetry.handler]
    SimulatedChatModel().invoke("hello", config={"callbacks": handlers})
    [chat] = telemetry.named("chat ")
    names = [e.name for e in chat.events]
    assert names == ["langchain_runtime.budget.reserved", "langchain_runtime.budget.settled"]
    reserved, settled = chat.events
    assert reserved.attributes["langchain_runtime.budget.input_tokens"] == 50
    assert reserved.attributes["langchain_runtime.budget.output_tokens"] == 100
    assert reserved.attributes["langchain_runtime.budget.amount"] > 0
    assert settled.attributes["langchain_runtime.budget.amount"] == pytest.approx(
        float(budget.enforcer.spent.amount)
    )
    assert settled.attributes["langchain_runtime.budget.amount"] == pytest.approx(
        chat.attributes["gen_ai.usage.cost.amount"]
    )
    assert chat.start_time <= reserved.timestamp <= settled.timestamp <= chat.end_time
    assert chat.status.status_code is StatusCode.UNSET


def test_a_refusal_through_the_hook_ends_the_call_span_with_an_error(
    telemetry: Telemetry,
) -> None:
    budget = HookedBudget(Budget(max_tokens=10))
    model = SimulatedChatModel()
    with pytest.raises(BudgetExceededError):
        model.invoke("hello", config={"callbacks": [telemetry.handler, budget]})
    [chat] = telemetry.named("chat ")
    assert chat.status.status_code is StatusCode.ERROR
    event, exception = chat.events
    assert event.name == "langchain_runtime.budget.refused"
    assert exception.name == "exception"
    assert exception.attributes["exception.type"].endswith("BudgetExceededError")
    assert event.attributes["langchain_runtime.budget.limit"] == 10
    assert event.attributes["langchain_runtime.budget.spent"] == 0
    assert "Token budget exceeded" in event.attributes["langchain_runtime.budget.message"]


def test_listeners_are_weak_for_methods_and_removable() -> None:
    seen: list[BudgetEvent] = []

    class Owner:
        def listen(self, event: BudgetEvent) -> None:
            seen.append(event)

    owner = Owner()
    add_budget_listener(owner.listen)
    budget_events.settled("x", Usage(input_tokens=1), None)
    del owner
    budget_events.settled("y", Usage(input_tokens=1), None)
    assert [e.call_id for e in seen] == ["x"]
    remove = add_budget_listener(seen.append)
    budget_events.reserved("z", None)
    remove()
    budget_events.reserved("w", None)
    assert [e.call_id for e in seen] == ["x", "z"]


def test_a_failing_listener_does_not_break_the_call(caplog: pytest.LogCaptureFixture) -> None:
    def broken(event: BudgetEvent) -> None:
        raise RuntimeError("listener bug")

    remove = add_budget_listener(broken)
    try:
        budget_events.reserved("call", None)
    finally:
        remove()
    assert "budget event listener failed" in caplog.text
