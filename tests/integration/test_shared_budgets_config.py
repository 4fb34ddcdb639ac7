"""A workflow file's ``ledger:`` and ``scopes:``: ``load_workflow`` and ``langchain-runtime
run`` reserve in the shared ledger (a SQLite file any other process can open)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from langchain_runtime.cli.app import app
from langchain_runtime.config import load_config, load_workflow
from langchain_runtime.cost.ledger import SQLiteLedger
from langchain_runtime.domain import RunState
from langchain_runtime.errors import ConfigurationError

WORKFLOW = """\
name: digest
ledger: sqlite:///{db}
scopes: [team:research]
models:
  fast: {{provider: simulated, response_tokens: 8}}
model: fast
policy:
  scopes: ["user:42"]
  budget: {{max_tokens: 100000, expected_output_tokens: 64}}
tasks:
  - id: a
    prompt: "Hello {{topic}}"
  - id: b
    deps: [a]
    prompt: "Again: {{a}}"
"""


@pytest.fixture
def workflow(tmp_path: Path) -> Callable[[], Path]:
    def write() -> Path:
        path = tmp_path / "digest.yaml"
        path.write_text(WORKFLOW.format(db=tmp_path / "budgets.db"), encoding="utf-8")
        return path

    return write


def test_load_workflow_runs_in_the_files_ledger_and_scopes(
    workflow: Callable[[], Path], tmp_path: Path
) -> None:
    config = load_config(workflow())
    orch = config.build_workflow()
    assert orch.policy.scopes == ("user:42", "team:research")  # the policy's, then the file's
    assert isinstance(orch.ledger, SQLiteLedger) and orch.ledger is config.ledger()
    result = orch.invoke({"topic": "owls"})
    assert result.state is RunState.COMPLETED, result.error
    other = SQLiteLedger(tmp_path / "budgets.db")  # as another process sees it
    try:
        for scope in ("team:research", "user:42"):
            status = other.status(scope)
            assert status.spent == result.cost.amount > 0
            assert status.spent_tokens == result.usage.total_tokens
            assert status.reserved_tokens == 0
        # a limit set by anyone is what the next run meets: refused, naming the scope
        other.set_limit("team:research", max_tokens=result.usage.total_tokens + 5)
        again = config.build_workflow().invoke({"topic": "owls"})
        assert again.state is RunState.BUDGET_EXCEEDED
        assert again.error is not None and "scope 'team:research'" in again.error.message
        assert other.status("team:research").spent_tokens == result.usage.total_tokens
    finally:
        other.close()
        config.close()


def test_the_cli_run_reserves_in_the_files_ledger(
    workflow: Callable[[], Path], tmp_path: Path
) -> None:
    path = workflow()
    ledger = SQLiteLedger(tmp_path / "budgets.db")
    try:
        ledger.set_limit("team:research", max_tokens=5)
        out = CliRunner().invoke(app, ["run", str(path), "-i", "topic=owls", "--json"])
        assert out.exit_code == 1, out.stdout
        assert json.loads(out.stdout)["state"] == "budget_exceeded"
        assert "scope 'team:research'" in out.stderr
        ledger.set_limit("team:research", max_tokens=None)
        ok = CliRunner().invoke(app, ["run", str(path), "-i", "topic=owls"])
        assert ok.exit_code == 0, ok.stderr
        assert ledger.status("team:research").spent_tokens > 0
        assert ledger.status("team:research").reserved_tokens == 0
    finally:
        ledger.close()


def test_scopes_without_a_ledger_name_the_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "w.yaml"
    path.write_text(
        "scopes: [team:x]\ntasks:\n  - {id: a, prompt: hi, model: simulated}\n", encoding="utf-8"
    )
    with pytest.raises(ConfigurationError, match=r"w\.yaml.*scopes.*need a shared budget ledger"):
        load_workflow(path)
