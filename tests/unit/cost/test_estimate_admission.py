"""The run estimate as a library function, and whole-plan admission (``worst_case``)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder

from langchain_runtime import (
    Budget,
    BudgetExceededError,
    ConfigurationError,
    ContextPolicy,
    Orchestrator,
    RunPolicy,
    Task,
)
from langchain_runtime.config import load_workflow
from langchain_runtime.cost import AdmissionError, RunEstimate, estimate_run
from langchain_runtime.testing import ScriptedChatModel, SimulatedChatModel
from tests.unit.context._helpers import Recorder


def chain(model: Any, **task_kwargs: Any) -> list[Task]:
    return [
        Task("research", prompt="Research {topic} in depth", model=model, **task_kwargs),
        Task("outline", prompt="Outline: {research}", model=model, deps=["research"]),
        Task(
            "draft",
            prompt="Draft from {outline} and {research}",
            model=model,
            deps=["outline", "research"],
        ),
    ]


def budget_policy(max_cost: Decimal | str, **kwargs: Any) -> RunPolicy:
    budget = Budget(max_cost=Decimal(max_cost), expected_output_tokens=64)
    return RunPolicy(budget=budget, **kwargs)


def upper(est: RunEstimate) -> Decimal:
    assert est.retry_cost_high is not None
    return est.retry_cost_high


def test_the_estimate_brackets_the_real_run_of_an_orchestrator() -> None:
    model = SimulatedChatModel(response_tokens=40)
    orch = Orchestrator(chain(model), policy=budget_policy("1"))
    est = estimate_run(orch, {"topic": "tidal energy"})
    result = orch.invoke({"topic": "tidal energy"})
    assert result.ok, result.error
    by_task = {t.task_id: t for t in est.tasks}
    assert list(by_task) == ["research", "outline", "draft"]
    for tid, tr in result.tasks.items():
        e = by_task[tid]
        assert e.input.contains(tr.usage.input_tokens), (tid, e.input, tr.usage)
        assert e.output.contains(tr.usage.output_tokens), (tid, e.output, tr.usage)
        assert e.cost_low is not None and e.cost_high is not None
        assert e.cost_low <= tr.cost.amount <= e.cost_high, tid
    assert by_task["research"].prompt_exact and not by_task["draft"].prompt_exact
    assert by_task["draft"].fed_by == ("outline", "research")
    assert by_task["research"].output_basis == "expected_output_tokens"
    assert est.cost_high is not None and result.cost.amount <= est.cost_high
    assert est.fits is True


def test_a_models_own_max_tokens_bounds_its_output() -> None:
    est = estimate_run(chain(SimulatedChatModel(max_tokens=7)), {"topic": "x"})
    assert all(t.output.high == 7 and t.output_basis == "max_tokens" for t in est.tasks)


def test_worst_case_refuses_before_any_call_with_the_estimate() -> None:
    model = ScriptedChatModel(responses=["a reply"], cycle=True)
    probe = estimate_run(chain(model), {"topic": "owls"}, policy=budget_policy("1"))
    limit = upper(probe) - Decimal("0.0000001")
    recorder = Recorder()
    orch = Orchestrator(chain(model), policy=budget_policy(limit, admission="worst_case"))
    with pytest.raises(AdmissionError) as info:
        orch.invoke({"topic": "owls"}, {"callbacks": [recorder]})
    err = info.value
    assert isinstance(err, BudgetExceededError) and err.code == "budget_exceeded"
    assert err.estimate.retry_cost_high == upper(probe)
    assert err.limit == limit and err.spent == 0
    assert f"{upper(probe).normalize():f} USD" in str(err)
    assert f"{limit.normalize():f} USD" in str(err)
    assert model.calls == 0 and recorder.starts == []


def test_worst_case_admits_a_run_whose_upper_bound_fits() -> None:
    model = SimulatedChatModel(response_tokens=40)
    probe = estimate_run(chain(model), {"topic": "owls"}, policy=budget_policy("1"))
    orch = Orchestrator(chain(model), policy=budget_policy(upper(probe), admission="worst_case"))
    result = orch.invoke({"topic": "owls"})
    assert result.ok, result.error
    assert result.cost.amount <= upper(probe)


def test_the_default_admission_is_per_call_and_starts_the_run() -> None:
    assert RunPolicy().admission == "per_call"
    model = SimulatedChatModel(response_tokens=40)
    probe = estimate_run(chain(model), {"topic": "owls"}, policy=budget_policy("1"))
    # enough for the first task's call, not for the worst case of the whole run
    first = probe.tasks[0].cost_high
    assert first is not None
    orch = Orchestrator(chain(model), policy=budget_policy(first * 2))
    result = orch.invoke({"topic": "owls"})
    assert result.tasks["research"].state.value == "completed"
    with pytest.raises(AdmissionError):
        Orchestrator(chain(model), policy=budget_policy(first * 2, admission="worst_case")).invoke(
            {"topic": "owls"}
        )


def test_every_retry_counts_in_the_worst_case() -> None:
    model = SimulatedChatModel()
    probe = estimate_run(chain(model, max_retries=2), {"topic": "owls"}, policy=budget_policy("1"))
    single = probe.cost_high
    assert single is not None and probe.retry_cost_high is not None
    assert probe.retry_cost_high > single
    policy = budget_policy(single, admission="worst_case")
    with pytest.raises(AdmissionError, match=r"every retry included"):
        Orchestrator(chain(model, max_retries=2), policy=policy).invoke({"topic": "owls"})


def test_a_token_budget_is_admitted_by_the_token_upper_bound() -> None:
    model = SimulatedChatModel()
    probe = estimate_run(chain(model), {"topic": "owls"}, policy=budget_policy("1"))
    high = probe.tokens.high
    assert high is not None
    tight = RunPolicy(
        budget=Budget(max_tokens=high - 1, expected_output_tokens=64), admission="worst_case"
    )
    with pytest.raises(AdmissionError, match=rf"may use {high} tokens, over the budget of"):
        Orchestrator(chain(model), policy=tight).invoke({"topic": "owls"})
    enough = tight.model_copy(update={"budget": Budget(max_tokens=high, expected_output_tokens=64)})
    assert Orchestrator(chain(model), policy=enough).invoke({"topic": "owls"}).ok


def test_a_task_the_estimate_cannot_see_into_has_no_upper_bound() -> None:
    tasks = [Task("fetch", lambda x: "notes"), *chain(SimulatedChatModel())]
    est = estimate_run(tasks, {"topic": "owls"}, policy=budget_policy("1"))
    fetch = est.tasks[[t.task_id for t in est.tasks].index("fetch")]
    assert fetch.cost_high is None and fetch.unbounded_calls is not None
    assert est.cost_high is None and est.fits is None
    with pytest.raises(AdmissionError, match=r"task 'fetch' may make calls the estimate"):
        Orchestrator(tasks, policy=budget_policy("1", admission="worst_case")).invoke(
            {"topic": "owls"}
        )
    # without a budget there is nothing to admit against
    assert Orchestrator(tasks, policy=RunPolicy(admission="worst_case")).invoke({"topic": "x"}).ok


def test_a_summarize_policy_is_refused_as_unbounded() -> None:
    model = SimulatedChatModel()
    tasks = chain(model)
    tasks[1] = Task(
        "outline",
        prompt="Outline: {research}",
        model=model,
        deps=["research"],
        context=ContextPolicy(strategy="summarize", max_tokens=50),
    )
    with pytest.raises(AdmissionError, match="summarizer calls"):
        Orchestrator(tasks, policy=budget_policy("1", admission="worst_case")).invoke(
            {"topic": "owls"}
        )


def test_start_refuses_too_before_the_run_exists() -> None:
    model = ScriptedChatModel(responses=["x"], cycle=True)
    orch = Orchestrator(chain(model), policy=budget_policy("0.0000001", admission="worst_case"))
    with pytest.raises(AdmissionError):
        orch.start({"topic": "owls"})
    assert model.calls == 0


def test_a_history_placeholder_is_estimated_and_bounded() -> None:
    history = [SystemMessage("be brief"), HumanMessage("what do owls eat?"), AIMessage("mice")]
    chat = ChatPromptTemplate.from_messages([MessagesPlaceholder("history"), ("human", "{q}")])
    model = ScriptedChatModel(responses=["voles too"], cycle=True)
    tasks = [
        Task("given", prompt=chat, model=model, inputs={"history": "$input.past"}),
        Task("first", prompt="Say {q}", model=model),
        Task("fed", prompt=chat, model=model, inputs={"history": "first"}),
    ]
    run_input = {"past": history, "q": "and else?"}
    est = estimate_run(tasks, run_input, policy=budget_policy("1"))
    result = Orchestrator(tasks, policy=budget_policy("1")).invoke(run_input)
    assert result.ok, result.error
    by_task = {t.task_id: t for t in est.tasks}
    assert by_task["given"].prompt_exact and not by_task["fed"].prompt_exact
    for tid, tr in result.tasks.items():
        assert by_task[tid].input.contains(tr.usage.input_tokens), tid


def test_yaml_policies_take_admission_and_refuse_typos() -> None:
    workflow = {
        "models": {"m": {"provider": "simulated", "response_tokens": 8}},
        "policies": {"default": {"admission": "worst_case", "budget": {"max_cost": "0.0000001"}}},
        "workflows": {"w": {"tasks": [{"id": "a", "prompt": "Hi {name}", "model": "m"}]}},
    }
    orch = load_workflow(workflow, "w")
    assert orch.policy.admission == "worst_case"
    with pytest.raises(AdmissionError):
        orch.invoke({"name": "Ada"})
    typo = {**workflow, "policies": {"default": {"admision": "worst_case"}}}
    with pytest.raises(ConfigurationError, match=r"did you mean 'admission'\?"):
        load_workflow(typo, "w")
    bad = {**workflow, "policies": {"default": {"admission": "always"}}}
    with pytest.raises(ConfigurationError, match=r"admission.*'per_call' or 'worst_case'"):
        load_workflow(bad, "w")


def test_the_sidecar_policy_takes_admission() -> None:
    from langchain_runtime.api.schemas import PolicyIn

    assert PolicyIn(admission="worst_case").apply(RunPolicy()).admission == "worst_case"
    assert PolicyIn().apply(RunPolicy(admission="worst_case")).admission == "worst_case"
