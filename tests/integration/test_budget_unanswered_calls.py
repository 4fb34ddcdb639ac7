"""A call sent with no answer back (a read timeout, a dropped connection) costs its hold.

The provider may still finish such a call and bill it up to the output limit it was
given, as it may a cancelled one; it used to be settled at its input alone, freeing
the rest of its hold while the provider billed it. A call that never left (the
connection was refused) and a call answered with an HTTP error still cost their input
estimate. Real ChatOpenAI against a real HTTP server on a loopback port.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from langchain.agents import create_agent
from langchain_core.messages import HumanMessage
from langchain_core.prompts import ChatPromptTemplate
from langchain_openai import ChatOpenAI

from langchain_runtime import Budget, BudgetMiddleware, Orchestrator, RunPolicy, Task
from langchain_runtime.cost import BudgetCallbackHandler, CostCalculator, TokenEstimator
from langchain_runtime.cost._call_state import sent_unanswered
from langchain_runtime.cost.ledger import InMemoryLedger
from langchain_runtime.domain import Usage

MODEL = "gpt-4o-mini"
LIMIT = 700  # the output limit each call is sent with


class Provider:
    """Receives each request (from then on it may bill it) and, by ``mode``: never
    answers in time (``slow``), drops the connection (``drop``) or answers 500."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.limits: list[int] = []
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                provider.limits.append(body.get("max_completion_tokens") or body["max_tokens"])
                if provider.mode == "slow":
                    time.sleep(1.0)  # the client gave up at 0.3 s
                elif provider.mode == "error":
                    data = b'{"error": {"message": "boom", "type": "server"}}'
                    self.send_response(500)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                self.close_connection = True  # "drop": no answer at all

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


@pytest.fixture(params=["slow", "drop"])
def unanswered(request: pytest.FixtureRequest) -> Iterator[Provider]:
    provider = Provider(request.param)
    yield provider
    provider.close()


def chat(url: str, **kwargs: Any) -> ChatOpenAI:
    # only the wait for the answer is short: a connection (or a pooled one) taking
    # longer on a loaded machine must not turn into a call that never left
    timeout = httpx.Timeout(10.0, read=0.3)
    return ChatOpenAI(model=MODEL, api_key="sk-test", base_url=url, max_retries=0,  # type: ignore[arg-type]
                      timeout=timeout, **kwargs)  # fmt: skip


def held(prompt: str, limit: int = LIMIT) -> Usage:
    counted = TokenEstimator().count_messages([HumanMessage(prompt)], MODEL)
    return Usage(input_tokens=counted, output_tokens=limit, estimated=True)


def test_an_unanswered_call_costs_its_hold(unanswered: Provider) -> None:
    handler = BudgetCallbackHandler(Budget(max_cost="1"))
    with pytest.raises(Exception, match=r"(?i)timed out|connection"):
        chat(unanswered.url, max_tokens=LIMIT).invoke("hello", config={"callbacks": [handler]})
    assert unanswered.limits == [LIMIT]  # it was sent
    assert handler.usage == held("hello")
    assert handler.spent.amount == CostCalculator().cost(MODEL, held("hello")).amount
    assert handler.reserved.amount == 0


def test_an_unanswered_async_call_costs_its_hold(unanswered: Provider) -> None:
    import asyncio

    handler = BudgetCallbackHandler(Budget(max_cost="1"))
    model = chat(unanswered.url, max_tokens=LIMIT)
    with pytest.raises(Exception, match=r"(?i)timed out|connection"):
        asyncio.run(model.ainvoke("hello", config={"callbacks": [handler]}))
    assert handler.usage == held("hello")


def test_a_call_that_never_left_or_got_an_error_costs_its_input() -> None:
    with socket.socket() as s:  # a port nobody listens on: the connection is refused
        s.bind(("127.0.0.1", 0))
        refused = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    erring = Provider("error")
    try:
        for url in (refused, erring.url):
            handler = BudgetCallbackHandler(Budget(max_cost="1"))
            with pytest.raises(Exception, match=r"(?i)connection|boom"):
                chat(url, max_tokens=LIMIT).invoke("hello", config={"callbacks": [handler]})
            assert handler.usage == Usage(input_tokens=held("hello").input_tokens, estimated=True)
        assert erring.limits == [LIMIT]
    finally:
        erring.close()


def test_the_middleware_charges_an_unanswered_call_its_limit(unanswered: Provider) -> None:
    middleware = BudgetMiddleware(max_cost="0.01")
    agent = create_agent(chat(unanswered.url), middleware=[middleware])
    with pytest.raises(Exception, match=r"(?i)timed out|connection"):
        agent.invoke({"messages": [("user", "hello")]})
    assert len(unanswered.limits) == 1
    assert middleware.usage.output_tokens == unanswered.limits[0]
    assert middleware.usage.estimated


def test_a_shared_scope_is_charged_the_hold_of_an_unanswered_task(unanswered: Provider) -> None:
    ledger = InMemoryLedger()
    ledger.set_limit("team:t", max_cost="1")
    prompt = ChatPromptTemplate.from_template("say {x}")
    task = Task("t", prompt=prompt, model=chat(unanswered.url, max_tokens=LIMIT))
    result = Orchestrator([task], policy=RunPolicy(scopes=("team:t",)), ledger=ledger).invoke(
        {"x": "hi"}
    )
    assert result.state.value == "failed"
    assert unanswered.limits == [LIMIT]
    status = ledger.status("team:t")
    assert status.reserved == 0
    assert status.spent == CostCalculator().cost(MODEL, held("say hi")).amount > Decimal(0)


def test_what_counts_as_sent_without_an_answer() -> None:
    class APIStatusError(Exception):
        status_code = 502

    class ReadTimeout(Exception):
        pass

    class ConnectError(Exception):
        pass

    def caused(outer: BaseException, inner: BaseException) -> BaseException:
        outer.__cause__ = inner
        return outer

    assert sent_unanswered(caused(RuntimeError("wrapped"), ReadTimeout()))
    assert sent_unanswered(ConnectionResetError())
    assert not sent_unanswered(caused(RuntimeError("wrapped"), ConnectError()))
    assert not sent_unanswered(caused(ReadTimeout(), ConnectionRefusedError()))
    assert not sent_unanswered(APIStatusError())
    assert not sent_unanswered(ValueError("bad arguments"))


def test_real_transport_errors_are_told_apart() -> None:
    import httpx
    import openai

    request = httpx.Request("POST", "https://api.example/v1/chat/completions")

    def through_the_sdk(inner: Exception) -> BaseException:
        outer = openai.APIConnectionError(request=request)
        outer.__cause__ = inner
        return outer

    # the request may have reached the provider: it costs its hold
    for sent in (httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("dropped")):
        assert sent_unanswered(through_the_sdk(sent)), sent
    assert sent_unanswered(openai.APITimeoutError(request=request))
    # it never left this machine: input only
    for never in (httpx.ConnectTimeout("no route"), httpx.PoolTimeout("pool"),
                  httpx.LocalProtocolError("bad header"), httpx.UnsupportedProtocol("ftp"),
                  httpx.ProxyError("proxy said no"), httpx.ConnectError("refused")):  # fmt: skip
        assert not sent_unanswered(through_the_sdk(never)), never
