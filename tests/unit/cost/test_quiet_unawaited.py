"""A refusal inside astream_events leaves no "coroutine 'ahandle_event' was never awaited".

Reviewer's t13: an agent under ``with_budget`` refused in ``astream_events`` made
Python print that RuntimeWarning (langchain-core creates the start coroutines of
its non-inline handlers before awaiting the inline one that refuses). Run in a
subprocess under Python's default warning filters, as a user's script would.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

SCRIPT = """
import asyncio, gc, os, warnings
os.environ["OPENAI_API_KEY"] = "sk-test"
import respx
from langchain.agents import create_agent
from langchain_openai import ChatOpenAI
from langchain_runtime import BudgetExceededError, with_budget

async def main():
    llm = ChatOpenAI(model="gpt-4o-mini", max_retries=0, timeout=5)
    with respx.mock(assert_all_called=False) as mock:
        route = mock.post("https://api.openai.com/v1/chat/completions")
        try:
            agent = with_budget(create_agent(llm), max_tokens=50)
            async for _ in agent.astream_events({"messages": [("user", "hi")]}, version="v2"):
                pass
        except BudgetExceededError:
            print("refused", route.call_count)

asyncio.run(main())
gc.collect()
async def other():
    pass
other()  # someone else's forgotten coroutine: still reported
gc.collect()
warnings.warn("unrelated runtime warning", RuntimeWarning)
"""


def test_refusal_in_astream_events_leaves_no_unawaited_coroutine_warning() -> None:
    out = subprocess.run(
        [sys.executable, "-W", "default", "-c", SCRIPT],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=True,
    )
    assert out.stdout == "refused 0\n"
    assert "ahandle_event" not in out.stderr
    # Other RuntimeWarnings still show.
    assert "coroutine 'other' was never awaited" in out.stderr
    assert "unrelated runtime warning" in out.stderr
