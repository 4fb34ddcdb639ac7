"""``langchain-runtime budgets set|show|list`` against real ledgers (a SQLite file, PostgreSQL)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from langchain_runtime.cost.ledger import SQLiteLedger
from tests.postgres_server import PostgresServer
from tests.unit.cli._support import Cli


def test_set_then_show_then_list_on_a_sqlite_ledger(cli: Cli, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'budgets.db'}"
    done = cli("budgets", "set", "team:research", "--ledger", url, "--max-cost", "25",
               "--window", "month")  # fmt: skip
    assert done.exit_code == 0, done.stderr
    assert "team:research" in done.stdout and "$25.000000" in done.stdout
    assert "month" in done.stdout

    # spend made by someone else through the same file shows up
    ledger = SQLiteLedger(tmp_path / "budgets.db")
    lease = ledger.reserve(["team:research", "user:42"], cost="1.25", tokens=300)
    ledger.settle(lease.id, cost="1.25", tokens=300)
    ledger.reserve(["team:research"], cost="0.50")
    ledger.close()

    shown = cli("budgets", "show", "team:research", "--ledger", url, "--json")
    assert shown.exit_code == 0, shown.stderr
    data = shown.json()
    assert data["scope"] == "team:research"
    assert (data["max_cost"], data["window"]) == ("25", "month")
    assert (data["spent"], data["reserved"], data["remaining"]) == ("1.25", "0.50", "23.25")
    assert data["window_start"].endswith("-01T00:00:00+00:00")

    listed = cli("budgets", "list", "--json", env={"LANGCHAIN_RUNTIME_LEDGER": url})
    assert listed.exit_code == 0, listed.stderr
    assert [row["scope"] for row in listed.json()] == ["team:research", "user:42"]
    assert listed.json()[1]["max_cost"] is None
    table = cli("budgets", "list", "--ledger", url)
    assert "Budgets (2 scopes)" in table.stdout and "no limit" in table.stdout


def test_windows_and_token_limits_from_the_command_line(cli: Cli, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'b.db'}"
    done = cli("budgets", "set", "key:ci", "--ledger", url, "--max-tokens", "5000",
               "--window", "12h", "--json")  # fmt: skip
    assert done.exit_code == 0, done.stderr
    assert (done.json()["max_tokens"], done.json()["window"]) == (5000, "43200s")
    assert done.json()["remaining_tokens"] == 5000
    ledger = SQLiteLedger(tmp_path / "b.db")
    assert ledger.status("key:ci").max_cost is None
    ledger.close()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--window", "fortnight"], "--window must be hour, day, week, month, none"),
        (["--max-cost", "lots"], "--max-cost must be an amount such as 25"),
        (["--max-cost", "-3"], "--max-cost must be an amount >= 0"),
    ],
)
def test_bad_options_are_usage_errors(
    cli: Cli, tmp_path: Path, args: list[str], message: str
) -> None:
    done = cli("budgets", "set", "team:a", "--ledger", f"sqlite:///{tmp_path / 'x.db'}", *args)
    assert done.exit_code == 2
    assert message in done.stderr
    assert not (tmp_path / "x.db").exists()  # nothing was opened


def test_a_missing_or_unknown_ledger_is_a_clear_error(cli: Cli) -> None:
    missing = cli("budgets", "list")
    assert missing.exit_code == 2
    assert "name the ledger with --ledger URL" in missing.stderr
    unknown = cli("budgets", "show", "team:a", "--ledger", "redis://x")
    assert unknown.exit_code == 2
    assert "unknown ledger URL scheme 'redis'" in unknown.stderr


@pytest.mark.postgres
def test_budgets_on_postgres_and_a_clear_error_when_it_is_down(
    cli: Cli, postgres_server: PostgresServer, postgres_db: str
) -> None:
    done = cli("budgets", "set", "team:a", "--ledger", postgres_db, "--max-cost", "0.75",
               "--json")  # fmt: skip
    assert done.exit_code == 0, done.stderr
    assert Decimal(done.json()["remaining"]) == Decimal("0.75")
    postgres_server.stop()
    down = cli("budgets", "show", "team:a", "--ledger", postgres_db)
    assert down.exit_code == 1
    assert down.stderr.startswith("error: budget ledger unavailable: PostgreSQL at ")
    assert "Traceback" not in down.stderr
