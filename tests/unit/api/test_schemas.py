from __future__ import annotations

from decimal import Decimal

import pytest
from langchain_core.messages import AIMessage
from pydantic import ValidationError

from langchain_runtime import Orchestrator, RunPolicy, Task
from langchain_runtime.api.schemas import (
    PolicyIn,
    RunRequest,
    RunStatus,
    decode_output,
    encode_output,
)
from langchain_runtime.domain import Budget
from langchain_runtime.testing import SimulatedChatModel


def test_policy_fields_override_the_base_policy() -> None:
    base = RunPolicy(max_parallelism=2, budget=Budget(max_cost=Decimal("1"), max_tokens=100))
    policy = PolicyIn(
        timeout_ms=2500,
        budget_limit={"amount": "0.25", "currency": "EUR"},
        context_policy={"max_tokens": 50, "strategy": "truncate"},
        scheduling="eager",
    ).apply(base)
    assert policy.max_parallelism == 2
    assert policy.timeout == 2.5
    assert policy.budget is not None
    assert (policy.budget.max_cost, policy.budget.currency) == (Decimal("0.25"), "EUR")
    assert policy.budget.max_tokens == 100  # untouched
    assert policy.context is not None and policy.context.strategy == "truncate"
    assert policy.scheduling == "eager"
    assert PolicyIn().apply(base) == base
    assert PolicyIn(token_limit=7).apply(RunPolicy()).budget == Budget(max_tokens=7)


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"workflow": "a", "tasks": [{"id": "x", "prompt": "p"}]},
        {"tasks": []},
        {"workflow": "a", "provider": "openai"},
        {"workflow": "a", "tasks": None, "base_url": "http://evil"},
        {"tasks": [{"id": "x", "prompt": "p", "model": {"provider": "openai"}}]},
        {"tasks": [{"id": "x", "prompt": "p", "base_url": "http://evil"}]},
        {"workflow": "a", "id": "../etc/passwd"},
        {"workflow": "a", "policy": {"timeout_ms": 0}},
        {"workflow": "a", "policy": {"budget_limit": {"amount": "NaN"}}},
        {"workflow": "a", "policy": {"budget_limit": {"amount": -1}}},
    ],
)
def test_run_requests_refuse_what_they_should(data: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        RunRequest.model_validate(data)


def test_message_outputs_round_trip_as_messages() -> None:
    msg = AIMessage("hi", usage_metadata={"input_tokens": 1, "output_tokens": 2, "total_tokens": 3})
    value, kind, text = encode_output(msg)
    assert (kind, text) == ("message", "hi")
    back = decode_output(value, kind)
    assert isinstance(back, AIMessage)
    assert back.text == "hi" and back.usage_metadata == msg.usage_metadata
    assert encode_output({"a": Decimal("1.5")}) == ({"a": "1.5"}, "json", None)
    assert encode_output("plain") == ("plain", "json", "plain")
    assert encode_output(object())[1] == "json"  # anything else becomes text


def test_a_status_turns_back_into_the_run_result() -> None:
    model = SimulatedChatModel(response_tokens=4)
    orch = Orchestrator(
        [
            Task("a", prompt="Say {x}", model=model),
            Task("b", lambda inp: {"n": 1}, deps=["a"]),
        ]
    )
    result = orch.invoke({"x": "y"})
    status = RunStatus.model_validate_json(
        RunStatus.from_result(result, run_id="api-1").model_dump_json()
    )
    back = status.to_result(result.events)
    assert back.run_id == "api-1"
    assert back.state == result.state
    assert back["a"].text == result["a"].text and isinstance(back["a"], AIMessage)
    assert back["b"] == {"n": 1}
    assert back.usage == result.usage and back.cost == result.cost
    assert back.tasks["a"].usage == result.tasks["a"].usage
    assert [e.type for e in back.events] == [e.type for e in result.events]
    assert RunStatus(run_id="r", state="aborting").to_result().state.value == "running"


def test_compaction_survives_the_wire() -> None:
    from langchain_runtime import ContextPolicy, Orchestrator, Task
    from langchain_runtime.api.schemas import RunStatus
    from langchain_runtime.testing import SimulatedChatModel

    policy = ContextPolicy(max_tokens=50, strategy="truncate")
    local = Orchestrator(
        [
            Task("big", lambda x: "w " * 500),
            Task("s", prompt="{big}", model=SimulatedChatModel(), deps=["big"], context=policy),
        ]
    ).invoke({})
    wire = RunStatus.from_result(local, run_id="r1").model_dump_json()
    remote = RunStatus.model_validate_json(wire).to_result()
    assert remote.tasks["s"].compaction == local.tasks["s"].compaction
    assert remote.tasks["s"].compaction is not None
