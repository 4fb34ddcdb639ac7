"""examples/research-openai.yaml run end to end on ChatOpenAI against mocked HTTP."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from langchain_runtime import RunState
from langchain_runtime.config import load_config, load_workflow

URL = "https://api.openai.com/v1/chat/completions"
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "research-openai.yaml"


def answer(request: httpx.Request) -> httpx.Response:
    body = json.loads(request.content)
    prompt = body["messages"][-1]["content"]
    completion = min(body.get("max_tokens") or body.get("max_completion_tokens") or 50, 50)
    return httpx.Response(
        200,
        json={
            "id": "c1",
            "object": "chat.completion",
            "created": 1,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": f"notes on {prompt[:30]}"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": len(prompt) // 4 + 10,
                "completion_tokens": completion,
                "total_tokens": len(prompt) // 4 + 10 + completion,
            },
        },
    )


def test_the_openai_example_validates_without_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    load_config(EXAMPLE).check()


def test_the_openai_example_runs_on_chat_openai(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    orchestrator = load_workflow(EXAMPLE)
    requests: list[dict[str, Any]] = []
    with respx.mock(assert_all_called=True) as router:
        route = router.post(URL)

        def record(request: httpx.Request) -> httpx.Response:
            requests.append(json.loads(request.content))
            return answer(request)

        route.side_effect = record
        result = orchestrator.invoke({"topic": "tidal energy"})
    assert result.state is RunState.COMPLETED, result.error
    assert route.call_count == 6
    # every call carries a max_tokens the budget could pay for, no more than configured
    caps = {r["model"]: r.get("max_tokens") or r.get("max_completion_tokens") for r in requests}
    assert caps["gpt-4o-mini"] is not None and caps["gpt-4o-mini"] <= 600
    assert caps["gpt-4o"] is not None and caps["gpt-4o"] <= 300
    # usage recorded equals what the mocked provider reported
    reported = sum(
        answer(httpx.Request("POST", URL, json=r)).json()["usage"]["total_tokens"] for r in requests
    )
    assert result.usage.total_tokens == reported
    assert set(result.models) == {"gpt-4o-mini", "gpt-4o"}
    assert 0 < result.cost.amount <= 0.01
