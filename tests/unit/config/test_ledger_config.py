"""``ledger:`` and per-workflow ``scopes:`` in a configuration file."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest

from langchain_runtime.config import load_config
from langchain_runtime.cost.ledger import SQLiteLedger
from langchain_runtime.errors import ConfigurationError

Write = Callable[[str, str], Path]


def test_a_workflow_file_names_its_ledger_and_scopes(write: Write, tmp_path: Path) -> None:
    path = write(
        "wf.yaml",
        f"""\
name: digest
ledger: sqlite:///{tmp_path / "budgets.db"}
scopes: [team:research, "user:42"]
models:
  fast: {{provider: simulated, response_tokens: 8}}
model: fast
tasks:
  - id: a
    prompt: "Hello {{topic}}"
""",
    )
    config = load_config(path)
    assert config.workflow_scopes() == ("team:research", "user:42")
    ledger = config.ledger()
    assert isinstance(ledger, SQLiteLedger)
    assert config.ledger() is ledger  # opened once
    ledger.set_limit("team:research", max_cost="2")
    # the same file, opened by anyone else, is the same ledger
    other = SQLiteLedger(tmp_path / "budgets.db")
    assert other.status("team:research").max_cost == Decimal("2")
    other.close()
    ledger.close()


def test_a_config_with_several_workflows_and_a_single_scope(tmp_path: Path) -> None:
    config = load_config(
        {
            "ledger": "memory://",
            "workflows": {
                "a": {
                    "scopes": "team:a",
                    "tasks": [{"id": "t", "prompt": "x", "model": "simulated"}],
                },
                "b": {"tasks": [{"id": "t", "prompt": "x", "model": "simulated"}]},
            },
        }
    )
    assert config.workflow_scopes("a") == ("team:a",)
    assert config.workflow_scopes("b") == ()
    assert type(config.ledger()).__name__ == "InMemoryLedger"
    assert (
        load_config(
            {"workflows": {"b": {"tasks": [{"id": "t", "prompt": "x", "model": "simulated"}]}}}
        ).ledger()
        is None
    )


@pytest.mark.parametrize(
    ("doc", "where"),
    [
        ({"ledger": "redis://x"}, "ledger"),
        ({"ledger": "budgets.db"}, "ledger"),
        (
            {
                "workflows": {
                    "a": {
                        "scopes": [""],
                        "tasks": [{"id": "t", "prompt": "x", "model": "simulated"}],
                    }
                }
            },
            "scopes",
        ),
        (
            {
                "workflows": {
                    "a": {
                        "scopes": [" team "],
                        "tasks": [{"id": "t", "prompt": "x", "model": "simulated"}],
                    }
                }
            },
            "scopes",
        ),
    ],
)
def test_bad_ledger_urls_and_scopes_name_the_field(doc: dict[str, object], where: str) -> None:
    with pytest.raises(ConfigurationError, match=where):
        load_config(doc)
