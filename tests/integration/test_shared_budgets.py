"""Shared budgets: with_budget, BudgetMiddleware and Orchestrator runs reserving in ledger
scopes, on a real ChatOpenAI client against a mocked OpenAI API (respx), on every
ledger backend (in memory, a SQLite file, a PostgreSQL server the session starts).

The mocked provider bills what a real one would: the input tokens of the request as
tiktoken counts them, and an answer of ``ANSWER`` tokens cut to the request's limit.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_openai import ChatOpenAI

from langchain_runtime import BudgetMiddleware, Orchestrator, RunPolicy, Task
from langchain_runtime.cost import TokenEstimator, with_budget
from langchain_runtime.cost.ledger import (
    BudgetLedger,
    InMemoryLedger,
    PostgresLedger,
    SQLiteLedger,
)
from langchain_runtime.domain import Budget, RunState
from langchain_runtime.errors import (
    BudgetExceededError,
    ConfigurationError,
    LedgerUnavailableError,
)
from tests.unit.cost.ledger.conftest import FakeClock

URL = "https://api.openai.com/v1/chat/completions"
MODEL = "gpt-4o-mini"
ANSWER = 7  # output tokens of a full answer
SCOPE = "team:x"
EST = TokenEstimator()
_ROLES: dict[str, Callable[[str], BaseMessage]] = {
    "user": HumanMessage,
    "system": SystemMessage,
    "assistant": AIMessage,
}


class Provider:
    """The mocked chat-completions endpoint; keeps what it billed."""

    def __init__(self, router: respx.MockRouter) -> None:
        self.route = router.post(URL).mock(side_effect=self)
        self.billed: list[tuple[int, int]] = []
        self.during_call: Callable[[], None] | None = None

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if self.during_call is not None:
            self.during_call()
        limit = body.get("max_completion_tokens") or body.get("max_tokens") or 10_000
        messages = [_ROLES[m["role"]](m["content"]) for m in body["messages"]]
        inp = EST.count_messages(messages, MODEL)
        out = min(ANSWER, limit)
        self.billed.append((inp, out))
        usage = {"prompt_tokens": inp, "completion_tokens": out, "total_tokens": inp + out}
        message = {"role": "assistant", "content": "Hi " * out}
        choice = {"index": 0, "message": message, "finish_reason": "stop"}
        return httpx.Response(
            200,
            json={
                "id": f"c{len(self.billed)}",
                "object": "chat.completion",
                "created": 1,
                "model": MODEL,
                "choices": [choice],
                "usage": usage,
            },
        )

    @property
    def sent(self) -> int:
        return self.route.call_count

    @property
    def tokens(self) -> int:
        return sum(i + o for i, o in self.billed)

    @property
    def cost(self) -> Decimal:
        # gpt-4o-mini: $0.15 in, $0.60 out per 1M tokens
        return sum(
            ((i * Decimal("0.15") + o * Decimal("0.60")) / 1_000_000 for i, o in self.billed),
            Decimal(0),
        )


@pytest.fixture
def provider() -> Iterator[Provider]:
    with respx.mock(assert_all_called=False) as router:
        yield Provider(router)


def chat(**kwargs: Any) -> ChatOpenAI:
    kwargs.setdefault("model", MODEL)
    return ChatOpenAI(api_key="sk-test", max_retries=0, timeout=5, **kwargs)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc))


Opener = Callable[[], BudgetLedger]


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock) -> Iterator[Opener]:
    """Opens the ledger as another process would: a new handle on the same storage (in
    memory: the one ledger)."""
    kind = request.param
    dsn = request.getfixturevalue("postgres_db") if kind == "postgres" else None
    opened: list[BudgetLedger] = []

    def open_ledger() -> BudgetLedger:
        ledger: BudgetLedger
        if kind == "memory":
            if opened:
                return opened[0]
            ledger = InMemoryLedger(clock=clock)
        elif kind == "sqlite":
            ledger = SQLiteLedger(tmp_path / "ledger.db", clock=clock)
        else:
            assert dsn is not None
            ledger = PostgresLedger(dsn, clock=clock, timeout=2.0)
        opened.append(ledger)
        return ledger

    yield open_ledger
    for ledger in opened:
        ledger.close()


def no_renewer_left() -> bool:
    for thread in threading.enumerate():
        if thread.name == "ledger-lease-renewer":
            thread.join(timeout=5)
    return not any(t.name == "ledger-lease-renewer" for t in threading.enumerate())


def spend_until_refused(call: Callable[[], Any], limit: int = 50) -> BudgetExceededError:
    for _ in range(limit):
        try:
            call()
        except BudgetExceededError as exc:
            return exc
    raise AssertionError(f"never refused in {limit} calls")


# -- with_budget --------------------------------------------------------------------------


def test_with_budget_reserves_in_the_scope_and_stops_at_its_limit(
    provider: Provider, backend: Opener
) -> None:
    ledger = backend()
    ledger.set_limit(SCOPE, max_tokens=100)
    model = with_budget(chat(max_tokens=40), ledger=ledger, scopes=[SCOPE])
    refusal = spend_until_refused(lambda: model.invoke("Hello"))
    sent = provider.sent
    assert sent >= 3
    with pytest.raises(BudgetExceededError):
        model.invoke("Hello")
    assert provider.sent == sent  # refused before any request
    assert f"scope {SCOPE!r}" in str(refusal) and "100-token budget" in str(refusal)
    status = backend().status(SCOPE)
    assert status.spent_tokens == provider.tokens <= 100
    assert status.spent == provider.cost == model.spent.amount
    assert status.reserved == 0 and status.reserved_tokens == 0
    assert model.handler.enforcer.reserved_tokens == 0
    assert no_renewer_left()


def test_a_second_wrapper_sharing_the_scope_sees_the_first_ones_spend(
    provider: Provider, backend: Opener
) -> None:
    backend().set_limit(SCOPE, max_cost="0.0001")
    first = with_budget(chat(max_tokens=40), ledger=backend(), scopes=[SCOPE])
    first.invoke("Hello")
    first.invoke("Hello")
    other = backend()  # another process's handle
    assert other.status(SCOPE).spent == provider.cost == first.spent.amount
    second = with_budget(chat(max_tokens=40), ledger=other, scopes=[SCOPE, "user:2"])
    spend_until_refused(lambda: second.invoke("Hello"))
    sent = provider.sent
    with pytest.raises(BudgetExceededError, match="scope 'team:x'"):
        first.invoke("Hello")  # the second one took the rest
    assert provider.sent == sent
    assert backend().status(SCOPE).spent == provider.cost <= Decimal("0.0001")
    assert backend().status("user:2").spent == second.spent.amount
    assert first.spent.amount + second.spent.amount == provider.cost


def test_the_scope_and_the_own_budget_are_all_or_nothing(
    provider: Provider, backend: Opener
) -> None:
    ledger = backend()
    ledger.set_limit(SCOPE, max_tokens=5)  # less than the input alone
    model = with_budget(chat(max_tokens=40), max_tokens=10_000, ledger=ledger, scopes=[SCOPE])
    with pytest.raises(BudgetExceededError, match="scope 'team:x'") as refused:
        model.invoke("Hello")
    assert refused.value.limit == 5 and refused.value.spent == 0
    assert provider.sent == 0
    # the run's own budget took its hold first, and gave it back
    assert model.handler.enforcer.reserved_tokens == 0
    assert model.handler.reserved.amount == 0
    assert model.remaining_tokens == 10_000
    # the other way round: the own budget refuses, the scope is never held
    ledger.set_limit(SCOPE, max_tokens=10_000)
    small = with_budget(chat(max_tokens=40), max_tokens=5, ledger=ledger, scopes=[SCOPE])
    with pytest.raises(BudgetExceededError, match="5-token budget"):
        small.invoke("Hello")
    status = backend().status(SCOPE)
    assert status.reserved_tokens == 0 and status.spent_tokens == 0 and provider.sent == 0


def test_a_daily_scope_refuses_then_accepts_in_the_next_window(
    provider: Provider, backend: Opener, clock: FakeClock
) -> None:
    ledger = backend()
    ledger.set_limit(SCOPE, max_tokens=60, window="day")
    model = with_budget(chat(max_tokens=40), ledger=ledger, scopes=[SCOPE])
    spend_until_refused(lambda: model.invoke("Hello"))
    today = provider.sent
    assert backend().status(SCOPE).spent_tokens == provider.tokens <= 60
    clock.advance(hours=12)  # 2026-12-02 00:00 UTC: a new day
    model.invoke("Hello")
    assert provider.sent == today + 1
    status = backend().status(SCOPE)
    assert status.window_start == datetime(2026, 12, 2, tzinfo=timezone.utc)
    assert status.spent_tokens == sum(i + o for i, o in provider.billed[today:])


def test_a_long_call_has_its_lease_renewed_while_in_flight(provider: Provider) -> None:
    renewed = threading.Event()

    class Watching(InMemoryLedger):
        def renew(self, reservation_id: str, *, lease_ttl: timedelta | None = None) -> Any:
            expires = super().renew(reservation_id, lease_ttl=lease_ttl)
            renewed.set()
            return expires

    ledger = Watching(lease_ttl=timedelta(milliseconds=300))  # renewed every 100 ms
    ledger.set_limit(SCOPE, max_tokens=1000)
    # the provider answers only once the lease was renewed (or gives up after 10 s)
    provider.during_call = lambda: assert_renewed(renewed)
    model = with_budget(chat(max_tokens=40), ledger=ledger, scopes=[SCOPE])
    model.invoke("Hello")
    status = ledger.status(SCOPE)
    assert status.spent_tokens == provider.tokens and status.reserved_tokens == 0
    assert no_renewer_left()  # it stops once no call is in flight
    model.close()


def assert_renewed(renewed: threading.Event) -> None:
    assert renewed.wait(timeout=10), "the lease of the call in flight was never renewed"


def test_scopes_need_a_ledger_and_a_ledger_needs_scopes() -> None:
    with pytest.raises(ConfigurationError, match="need a shared ledger"):
        with_budget(chat(), scopes=[SCOPE])
    with pytest.raises(ConfigurationError, match="needs the scopes"):
        with_budget(chat(), ledger=InMemoryLedger())
    with pytest.raises(ConfigurationError, match="non-empty string"):
        with_budget(chat(), ledger=InMemoryLedger(), scopes=[" "])


# -- BudgetMiddleware ---------------------------------------------------------------------


def _ask(agent: Any) -> AIMessage:
    final = agent.invoke({"messages": [("user", "Hello")]})["messages"][-1]
    assert isinstance(final, AIMessage)
    return final


def test_budget_middleware_reserves_in_the_scope(provider: Provider, backend: Opener) -> None:
    backend().set_limit(SCOPE, max_tokens=90)
    budget = BudgetMiddleware(ledger=backend(), scopes=[SCOPE], default_model=MODEL)
    agent = create_agent(chat(max_tokens=40), middleware=[budget])
    answers = 0
    while (final := _ask(agent)).response_metadata.get("finish_reason") != "budget_exceeded":
        answers += 1
        assert answers < 30
    assert answers == provider.sent >= 2
    assert "scope 'team:x'" in final.text and "90-token budget" in final.text
    status = backend().status(SCOPE)
    assert status.spent_tokens == provider.tokens == budget.usage.total_tokens <= 90
    assert status.spent == provider.cost and status.reserved_tokens == 0
    # a second agent on the same scope is refused at once, nothing sent
    other = BudgetMiddleware(ledger=backend(), scopes=[SCOPE], exit_behavior="error")
    with pytest.raises(BudgetExceededError, match="scope 'team:x'"):
        _ask(create_agent(chat(max_tokens=40), middleware=[other]))
    assert provider.sent == answers
    assert other.enforcer.reserved_tokens == 0


# -- Orchestrator -------------------------------------------------------------------------


def _tasks(n: int = 3) -> list[Task]:
    return [Task(f"t{i}", prompt="Hello {who}", model=chat(max_tokens=40)) for i in range(n)]


def test_an_orchestrator_run_reserves_in_its_scopes(provider: Provider, backend: Opener) -> None:
    # batched: the three tasks' plans (input + max_tokens=40 each) are held at once
    inp = EST.count_messages([HumanMessage("Hello owl")], MODEL)
    limit = 3 * (inp + 40) + 3
    backend().set_limit(SCOPE, max_tokens=limit)
    policy = RunPolicy(scopes=(SCOPE,), max_parallelism=2)
    orch = Orchestrator(_tasks(3), policy=policy, ledger=backend())
    first = orch.invoke({"who": "owl"})
    assert first.state is RunState.COMPLETED, first.error
    status = backend().status(SCOPE)
    assert status.spent_tokens == provider.tokens == first.usage.total_tokens
    assert status.spent == provider.cost == first.cost.amount
    assert status.reserved_tokens == 0
    # the second run sees the first one's spend: what is left is not enough for all
    second = Orchestrator(_tasks(3), policy=policy, ledger=backend()).invoke({"who": "owl"})
    assert second.state is RunState.BUDGET_EXCEEDED
    assert second.error is not None and "scope 'team:x'" in second.error.message
    assert f"{limit}-token budget" in second.error.message
    refused = [t for t in second.tasks.values() if t.error is not None]
    assert refused and all(t.error and t.error.code == "budget_exceeded" for t in refused)
    assert provider.sent == 3 + sum(t.state.value == "completed" for t in second.tasks.values())
    assert backend().status(SCOPE).spent_tokens == provider.tokens <= limit
    assert backend().status(SCOPE).reserved_tokens == 0
    assert no_renewer_left()


def test_a_scope_refusal_releases_the_runs_own_hold(provider: Provider, backend: Opener) -> None:
    backend().set_limit(SCOPE, max_tokens=4)
    policy = RunPolicy(scopes=(SCOPE,), budget=Budget(max_tokens=10_000))
    orch = Orchestrator(_tasks(1), policy=policy, ledger=backend())
    result = orch.invoke({"who": "owl"})
    assert result.state is RunState.BUDGET_EXCEEDED
    assert result.error is not None and "scope 'team:x'" in result.error.message
    assert provider.sent == 0
    assert backend().status(SCOPE).reserved_tokens == 0


def test_scopes_without_a_ledger_are_refused_at_construction() -> None:
    with pytest.raises(ConfigurationError, match="need a shared ledger"):
        Orchestrator(_tasks(1), policy=RunPolicy(scopes=(SCOPE,)))
    with pytest.raises(ConfigurationError, match="must be a BudgetLedger"):
        Orchestrator(_tasks(1), policy=RunPolicy(scopes=(SCOPE,)), ledger="sqlite:///x.db")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="non-empty string"):
        RunPolicy(scopes=("",))
    # a scope may have a cost limit: a model nobody can price is refused up front
    unpriced = Task("t", prompt="Hello {who}", model=chat(model="gpt-nobody-knows"))
    with pytest.raises(ConfigurationError, match="gpt-nobody-knows"):
        Orchestrator([unpriced], policy=RunPolicy(scopes=(SCOPE,)), ledger=InMemoryLedger())


# -- fail closed ---------------------------------------------------------------------------


@pytest.mark.postgres
def test_postgres_stopped_mid_run_refuses_the_next_call(
    provider: Provider, postgres_db: str, postgres_server: Any
) -> None:
    ledger = PostgresLedger(postgres_db, timeout=2.0)
    try:
        ledger.set_limit(SCOPE, max_tokens=10_000)
        tasks = [
            Task("a", prompt="Hello {who}", model=chat(max_tokens=40)),
            Task("stop", lambda _: postgres_server.stop(), deps=["a"]),
            Task("c", prompt="Hello {who}", model=chat(max_tokens=40), deps=["stop"]),
        ]
        orch = Orchestrator(tasks, policy=RunPolicy(scopes=(SCOPE,)), ledger=ledger)
        result = orch.invoke({"who": "owl"})
        assert result.tasks["a"].state.value == "completed"
        assert provider.sent == 1  # c was never sent
        assert result.state is RunState.BUDGET_EXCEEDED
        error = result.tasks["c"].error
        assert error is not None and error.type == "LedgerUnavailableError"
        assert "ledger unavailable" in error.message
        assert result.error is not None and "ledger unavailable" in result.error.message
        # with_budget on the same (stopped) ledger: refused, nothing sent
        model = with_budget(chat(max_tokens=40), ledger=ledger, scopes=[SCOPE])
        with pytest.raises(LedgerUnavailableError, match="ledger unavailable"):
            model.invoke("Hello")
        assert provider.sent == 1
        postgres_server.start()
        assert ledger.status(SCOPE).spent_tokens == provider.tokens  # a's spend is there
    finally:
        if not postgres_server.is_running():
            postgres_server.start()
        ledger.close()


def test_a_resumed_run_reserves_in_its_scopes_again(
    provider: Provider, backend: Opener, tmp_path: Path
) -> None:
    from langchain_runtime import SQLiteRunStore

    inp = EST.count_messages([HumanMessage("Hello owl")], MODEL)
    backend().set_limit(SCOPE, max_tokens=inp + 5)  # room for a's call, and no more
    tasks = [
        Task("a", prompt="Hello {who}", model=chat(max_tokens=5)),
        Task("b", prompt="Hello {who}", model=chat(max_tokens=40), deps=["a"]),
    ]
    store = SQLiteRunStore(tmp_path / "runs.db")
    try:
        orch = Orchestrator(tasks, policy=RunPolicy(scopes=(SCOPE,)), ledger=backend(), store=store)
        first = orch.invoke({"who": "owl"})
        assert first.state is RunState.BUDGET_EXCEEDED and provider.sent == 1
        backend().set_limit(SCOPE, max_tokens=1000)  # the team's budget is raised
        again = orch.resume(first.run_id)
        assert again.state is RunState.COMPLETED, again.error
        assert again.tasks["a"].restored and provider.sent == 2  # a is not sent again
        status = backend().status(SCOPE)
        assert status.spent_tokens == provider.tokens == again.usage.total_tokens
        assert status.reserved_tokens == 0
    finally:
        store.close()


def test_async_calls_reserve_in_the_scope_too(provider: Provider, backend: Opener) -> None:
    import asyncio

    backend().set_limit(SCOPE, max_tokens=80)
    model = with_budget(chat(max_tokens=40), ledger=backend(), scopes=[SCOPE])
    budget = BudgetMiddleware(ledger=backend(), scopes=[SCOPE], exit_behavior="error")
    agent = create_agent(chat(max_tokens=40), middleware=[budget])

    async def spend() -> BudgetExceededError:
        for _ in range(20):
            try:
                await model.ainvoke("Hello")
                await agent.ainvoke({"messages": [("user", "Hello")]})
            except BudgetExceededError as exc:
                return exc
        raise AssertionError("never refused")

    refusal = asyncio.run(spend())
    assert "scope 'team:x'" in str(refusal)
    status = backend().status(SCOPE)
    assert status.spent_tokens == provider.tokens <= 80
    assert status.spent_tokens == model.usage.total_tokens + budget.usage.total_tokens
    assert status.reserved_tokens == 0


def test_concurrent_callers_on_two_handles_never_pass_the_scope_together(
    provider: Provider, backend: Opener
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    backend().set_limit(SCOPE, max_tokens=300)
    wrappers = [
        with_budget(chat(max_tokens=40), ledger=backend(), scopes=[SCOPE]) for _ in range(2)
    ]

    def caller(i: int) -> int:
        model = wrappers[i % 2]
        answered = 0
        for _ in range(30):
            try:
                model.invoke("Hello")
            except BudgetExceededError:
                return answered
            answered += 1
        return answered

    with ThreadPoolExecutor(max_workers=8) as pool:
        answered = sum(pool.map(caller, range(8)))
    assert answered == provider.sent >= 5
    status = backend().status(SCOPE)
    assert status.spent_tokens == provider.tokens <= 300
    assert status.spent == provider.cost
    assert status.reserved_tokens == 0
    assert sum(w.usage.total_tokens for w in wrappers) == provider.tokens
    assert no_renewer_left()
