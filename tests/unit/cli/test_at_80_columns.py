"""The CLI at 80 columns and its flags (issue 10, findings 13 and 14).

Tables must stay readable in a default terminal: ids are never cut (a user copies
them), the estimate's explanations do not wrap a row to many lines.
"""

from __future__ import annotations

import re
import sys
import types
from typing import Any

import pytest

from langchain_runtime.cost import ModelCatalog
from tests.unit.cli._support import EXAMPLE, Cli

NARROW = {"COLUMNS": "80"}


def _table_rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("│")]


def test_estimate_rows_stay_short_and_say_output_once(cli: Cli) -> None:
    out = cli("estimate", EXAMPLE, "-i", "topic=owls", env=NARROW)
    assert out.exit_code == 0, out.stderr
    assert "output output" not in out.stdout
    assert all(len(line) <= 80 for line in out.stdout.splitlines() if line.startswith(("│", "┃")))
    rows = _table_rows(out.stdout)
    task_lines = [r for r in rows if not r.startswith("│ " + " " * 5)]  # a task's first line
    # 6 tasks and the total, each on at most 2 lines (it took 6-14 lines per task before)
    assert len(rows) <= 2 * 7
    assert len(task_lines) >= 7
    assert "= exp" in out.stdout and "≈ max" in out.stdout
    prose = " ".join(line.rstrip() for line in out.stdout.splitlines())  # wrapped at words
    assert all(len(line) <= 80 for line in out.stdout.splitlines())
    assert "outline ≈ (from research)" in prose
    assert "max output ≤ the model's max_tokens" in prose


def test_models_never_cut_a_name(cli: Cli) -> None:
    out = cli("models", env=NARROW)
    assert out.exit_code == 0, out.stderr
    assert "…" not in out.stdout
    for info in ModelCatalog.default():
        assert re.search(rf"^{re.escape(info.id)}\s", out.stdout, re.M), info.id
    assert all(len(line) <= 80 for line in out.stdout.splitlines())


@pytest.mark.parametrize("command", [(), ("run",), ("estimate",), ("serve",), ("runs", "list")])
def test_help_shows_flags_without_a_type(cli: Cli, command: tuple[str, ...]) -> None:
    out = cli(*command, "--help", env=NARROW)
    assert out.exit_code == 0
    assert "<bool>" not in out.stdout
    assert "--help" in out.stdout


# -- against a real sidecar on loopback -------------------------------------------------------
def test_runs_list_never_cuts_a_run_id(cli: Cli, sidecar: str) -> None:
    from langchain_runtime.api import RuntimeClient

    with RuntimeClient(sidecar) as client:
        ids = [r.run_id for r in client.list_runs().items]
    out = cli("runs", "list", "--url", sidecar, env=NARROW)
    assert out.exit_code == 0, out.stderr
    for run_id in ids:
        assert run_id in out.stdout


def test_runs_status_takes_a_unique_prefix(cli: Cli, sidecar: str) -> None:
    from langchain_runtime.api import RuntimeClient

    with RuntimeClient(sidecar) as client:
        long_id = next(r.run_id for r in client.list_runs().items if len(r.run_id) == 36)
    out = cli("runs", "status", long_id[:8], "--url", sidecar, "--json")
    assert out.exit_code == 0, out.stderr
    assert f'"run_id": "{long_id}"' in out.stdout
    ambiguous = cli("runs", "status", "abc-", "--url", sidecar)
    assert ambiguous.exit_code != 0
    assert "matches 2 runs" in ambiguous.stderr and "abc-1" in ambiguous.stderr
    missing = cli("runs", "status", "zzz", "--url", sidecar)
    assert missing.exit_code != 0 and "no run with id 'zzz'" in missing.stderr


# -- serve's new options ----------------------------------------------------------------------
@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    from langchain_runtime.api.server import parse_limits

    calls: list[dict[str, Any]] = []
    fake = types.ModuleType("langchain_runtime.api.server")
    fake.serve = lambda **kwargs: calls.append(kwargs)  # type: ignore[attr-defined]
    fake.parse_limits = parse_limits  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "langchain_runtime.api.server", fake)
    return calls


def test_serve_refuses_an_empty_token(cli: Cli, served: list[dict[str, Any]]) -> None:
    out = cli("serve", "--token", "")
    assert out.exit_code == 2
    assert "empty token would turn authentication off" in out.stderr
    assert served == []


def test_serve_widens_hosts_and_sets_limits(cli: Cli, served: list[dict[str, Any]]) -> None:
    out = cli(
        "serve", "--allowed-hosts", "runtime.internal,api.example", "--allowed-hosts", "x.test",
        "--limit", "max_tasks=50", "--limit", "body_timeout=5",
    )  # fmt: skip
    assert out.exit_code == 0, out.stderr
    (call,) = served
    assert call["allowed_hosts"] == [
        "localhost", "127.0.0.1", "::1", "runtime.internal", "api.example", "x.test",
    ]  # fmt: skip
    assert (call["limits"].max_tasks, call["limits"].body_timeout) == (50, 5.0)


def test_serve_refuses_an_unknown_limit(cli: Cli, served: list[dict[str, Any]]) -> None:
    out = cli("serve", "--limit", "max_taks=5")
    assert out.exit_code == 2
    assert "--limit 'max_taks=5': expected NAME=VALUE with NAME one of" in out.stderr
    assert served == []


def test_serve_passes_the_lease_ttl(cli: Cli, served: list[dict[str, Any]]) -> None:
    out = cli("serve", "--lease-ttl", "45", "--database", "sqlite:///x.db")
    assert out.exit_code == 0, out.stderr
    (call,) = served
    assert (call["lease_ttl"], call["database"]) == (45.0, "sqlite:///x.db")
    refused = cli("serve", "--lease-ttl", "0")
    assert refused.exit_code == 2 and "--lease-ttl" in refused.stderr
