"""``resume_run`` on both clients against mocked HTTP (respx): body, answer, errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal

import anyio
import httpx
import pytest
import respx

from langchain_runtime import Budget, ResumeError
from langchain_runtime.api import AsyncRuntimeClient, RunNotFoundError, RuntimeClient

URL = "http://runtime.test"
RESUME = f"{URL}/api/v1/runs/r1/resume"


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=True) as router:
        yield router


def test_resume_sends_the_new_budget_and_returns_the_acceptance(mock: respx.MockRouter) -> None:
    route = mock.post(RESUME).mock(
        return_value=httpx.Response(202, json={"run_id": "r1", "state": "running"})
    )
    with RuntimeClient(URL) as client:
        accepted = client.resume_run("r1", {"max_cost": "0.50"})
        assert (accepted.run_id, accepted.state) == ("r1", "running")
        client.resume_run("r1", Budget(max_cost=Decimal("1"), max_tokens=500))
        client.resume_run("r1")
    bodies = [json.loads(call.request.content) for call in route.calls]
    assert bodies == [
        {"budget": {"max_cost": "0.50"}},
        {"budget": {"max_cost": "1", "max_tokens": 500, "currency": "USD"}},
        {},
    ]


@pytest.mark.parametrize(
    ("status", "code", "error"),
    [
        (404, "run_not_found", RunNotFoundError),
        (409, "run_live", ResumeError),
        (422, "resume_refused", ResumeError),
    ],
)
def test_resume_errors_are_typed(
    mock: respx.MockRouter, status: int, code: str, error: type[Exception]
) -> None:
    mock.post(RESUME).mock(
        return_value=httpx.Response(status, json={"code": code, "message": f"why {code}"})
    )
    with RuntimeClient(URL, retries=0) as client, pytest.raises(error, match=f"why {code}"):
        client.resume_run("r1")


def test_a_bad_budget_is_refused_before_sending(mock: respx.MockRouter) -> None:
    route = mock.post(RESUME).mock(return_value=httpx.Response(202, json={}))
    with RuntimeClient(URL) as client, pytest.raises(ValueError, match="max_cost"):
        client.resume_run("r1", {"max_cost": "-1"})
    assert not route.called
    route.mock(return_value=httpx.Response(202, json={"run_id": "r1", "state": "running"}))
    with RuntimeClient(URL) as client:
        client.resume_run("r1")


def test_the_async_client_resumes_too(mock: respx.MockRouter) -> None:
    route = mock.post(RESUME).mock(
        return_value=httpx.Response(202, json={"run_id": "r1", "state": "pending"})
    )

    async def main() -> str:
        async with AsyncRuntimeClient(URL) as client:
            return (await client.resume_run("r1", {"max_tokens": 9})).state

    assert anyio.run(main) == "pending"
    assert json.loads(route.calls[0].request.content) == {"budget": {"max_tokens": 9}}
