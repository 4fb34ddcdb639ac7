"""A budget refusal is one BudgetExceededError, without langchain-core's warning."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler

from langchain_runtime.cost import BudgetCallbackHandler
from langchain_runtime.cost._quiet import _QuietRefusals, install_quiet_refusals
from langchain_runtime.domain import Budget
from langchain_runtime.errors import BudgetExceededError
from tests.unit.cost.fakes import ScriptedChatModel, answers

MANAGER = logging.getLogger("langchain_core.callbacks.manager")


def callback_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "callback" in r.getMessage()]


class Grumpy(BaseCallbackHandler):
    """A third-party handler whose own bug langchain-core should keep reporting."""

    def on_chat_model_start(self, *args: Any, **kwargs: Any) -> None:
        raise ValueError("grumpy handler bug")


@pytest.mark.parametrize("path", ["invoke", "ainvoke", "stream", "astream"])
def test_a_refusal_logs_nothing(caplog: pytest.LogCaptureFixture, path: str) -> None:
    model = ScriptedChatModel(responses=answers(1))
    handler = BudgetCallbackHandler(Budget(max_tokens=5))
    config: Any = {"callbacks": [handler]}

    async def consume() -> None:
        async for _ in model.astream("hello there", config):
            pass

    runs = {
        "invoke": lambda: model.invoke("hello there", config),
        "ainvoke": lambda: asyncio.run(model.ainvoke("hello there", config)),
        "stream": lambda: list(model.stream("hello there", config)),
        "astream": lambda: asyncio.run(consume()),
    }
    with caplog.at_level(logging.WARNING), pytest.raises(BudgetExceededError):
        runs[path]()
    assert callback_records(caplog) == []
    assert model.calls == 0


def test_other_handlers_errors_are_still_logged(caplog: pytest.LogCaptureFixture) -> None:
    model = ScriptedChatModel(responses=answers(1))
    handler = BudgetCallbackHandler(Budget(max_tokens=10_000, expected_output_tokens=10))
    with caplog.at_level(logging.WARNING):
        model.invoke("hello there", {"callbacks": [Grumpy(), handler]})
    records = callback_records(caplog)
    assert len(records) == 1
    assert "Grumpy.on_chat_model_start" in records[0].getMessage()
    assert "grumpy handler bug" in records[0].getMessage()


def test_without_the_filter_langchain_core_would_warn(caplog: pytest.LogCaptureFixture) -> None:
    # the filter is what keeps the record out (guards the test above)
    handler = BudgetCallbackHandler(Budget(max_tokens=5))
    quiet = [f for f in MANAGER.filters if isinstance(f, _QuietRefusals)]
    assert len(quiet) == 1
    MANAGER.removeFilter(quiet[0])
    try:
        with caplog.at_level(logging.WARNING), pytest.raises(BudgetExceededError):
            ScriptedChatModel(responses=answers(1)).invoke("hi", {"callbacks": [handler]})
    finally:
        install_quiet_refusals()
    assert len(callback_records(caplog)) == 1


def test_the_filter_is_installed_once() -> None:
    for _ in range(3):
        BudgetCallbackHandler()
        install_quiet_refusals()
    assert sum(isinstance(f, _QuietRefusals) for f in MANAGER.filters) == 1


def test_a_terminal_sees_only_the_error() -> None:
    # no logging configured, as in a plain script: langchain-core's warning would go
    # to stderr through logging's last-resort handler
    code = (
        "from langchain_core.language_models import FakeListChatModel\n"
        "from langchain_runtime import Budget, BudgetCallbackHandler, BudgetExceededError\n"
        "h = BudgetCallbackHandler(Budget(max_tokens=5), default_model='simulated')\n"
        "try:\n"
        "    FakeListChatModel(responses=['hi']).invoke('hello there', {'callbacks': [h]})\n"
        "except BudgetExceededError as exc:\n"
        "    print('refused:', exc.limit)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout == "refused: 5\n"
    assert out.stderr == ""


def test_a_notebook_sees_only_the_error() -> None:
    import os
    from pathlib import Path

    import nbformat
    from nbclient import NotebookClient

    root = Path(__file__).resolve().parents[3]
    cell = (
        "from langchain_core.language_models import FakeListChatModel\n"
        "from langchain_runtime import Budget, BudgetCallbackHandler\n"
        "h = BudgetCallbackHandler(Budget(max_tokens=5), default_model='simulated')\n"
        "FakeListChatModel(responses=['hi']).invoke('hello there', {'callbacks': [h]})\n"
    )
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(cell)])
    client = NotebookClient(
        nb,
        timeout=120,
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": str(root)}},
    )
    client.execute(env=dict(os.environ))
    outputs = nb.cells[0]["outputs"]
    # one output: the error itself, and no stderr stream with langchain-core's warning
    assert [o["output_type"] for o in outputs] == ["error"]
    assert outputs[0]["ename"] == "BudgetExceededError"
