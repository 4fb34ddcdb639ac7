"""API keys end to end: `keys new`/`keys hash` print what the config stores, a real
sidecar on a loopback port accepts the key, and the Python client reads and sets the
key's budgets (and only those)."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from langchain_runtime.api.errors import ScopeNotFoundError, UnauthorizedError
from langchain_runtime.api.server._keys import KeyEntry, KeyRing, hash_key
from langchain_runtime.cli.app import app as cli_app
from langchain_runtime.config import load_config

pytest.importorskip("fastapi", reason="the server tests need the 'server' extra")


def test_keys_hash_reads_stdin_and_prints_a_hash_the_server_accepts() -> None:
    key = "ci-key-" + "x" * 30
    done = CliRunner().invoke(cli_app, ["keys", "hash"], input=key + "\n")
    assert done.exit_code == 0, done.output
    line = done.stdout.strip()
    assert re.fullmatch(r"sha256:[0-9a-f]{32}:[0-9a-f]{64}", line)
    assert key not in done.stdout
    ring = KeyRing([KeyEntry("ci", line)])
    assert ring.identify(key) is not None and ring.identify(key + "y") is None
    # two hashes of one key differ (salted), both verify
    again = CliRunner().invoke(cli_app, ["keys", "hash"], input=key + "\n").stdout.strip()
    assert again != line and KeyRing([KeyEntry("ci", again)]).identify(key) is not None


def test_keys_hash_refuses_a_short_key() -> None:
    done = CliRunner().invoke(cli_app, ["keys", "hash"], input="hunter2\n")
    assert done.exit_code == 2
    assert "at least 24 characters" in done.stderr


def test_keys_new_prints_a_key_and_a_config_entry_that_loads() -> None:
    done = CliRunner().invoke(cli_app, ["keys", "new", "--name", "ci"])
    assert done.exit_code == 0, done.output
    key = re.search(r"^key: (\S+)$", done.stdout, re.M)
    entry = re.search(r'hash: "(sha256:[^"]+)"', done.stdout)
    assert key is not None and entry is not None
    config = load_config({"server": {"api_keys": [{"name": "ci", "hash": entry.group(1)}]}})
    found = KeyRing.from_specs(config.api_keys).identify(key.group(1))
    assert found is not None and found.name == "ci"


def test_the_client_reads_and_sets_its_own_budgets_on_a_real_server(tmp_path: Path) -> None:
    from langchain_runtime.api import RuntimeClient
    from langchain_runtime.api.server import serve_in_thread

    mine, other = "mine-" + "m" * 30, "other-" + "o" * 30
    config = load_config(
        {
            "ledger": f"sqlite:///{tmp_path / 'ledger.db'}",
            "server": {
                "api_keys": [
                    {"name": "me", "hash": hash_key(mine), "scopes": ["key:me", "team:x"]},
                    {"name": "them", "hash": hash_key(other), "scopes": ["team:y"]},
                ]
            },
        }
    )
    with serve_in_thread(config=config, store=":memory:") as server:
        with RuntimeClient(server.url, token=mine, timeout=10) as client:
            status = client.set_budget("team:x", max_cost="2.5", window="day")
            assert status.max_cost == Decimal("2.5") and status.window == "day"
            assert status.remaining == Decimal("2.5")
            assert client.get_budget("team:x").window_start is not None
            assert [b.scope for b in client.list_budgets()] == ["key:me", "team:x"]
            with pytest.raises(ScopeNotFoundError):
                client.get_budget("team:y")
            with pytest.raises(ScopeNotFoundError):
                client.set_budget("team:y", max_cost=100)
        with RuntimeClient(server.url, token=other, timeout=10) as client:
            assert client.get_budget("team:y").max_cost is None
            with pytest.raises(ScopeNotFoundError):
                client.get_budget("team:x")
        nobody = RuntimeClient(server.url, token="nobody-" + "n" * 30, timeout=10)
        with nobody, pytest.raises(UnauthorizedError):
            nobody.list_budgets()
