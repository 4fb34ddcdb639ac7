"""``create_app(lease_ttl=...)`` (``serve --lease-ttl``): the ledger it opens keeps leases
that long."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from langchain_runtime.config import load_config
from langchain_runtime.errors import ConfigurationError

pytest.importorskip("fastapi", reason="the server tests need the 'server' extra")

from langchain_runtime.api.server import create_app


def _ledger_ttl(app: object) -> timedelta:
    ledger = app.state.manager.ledger  # type: ignore[attr-defined]
    ttl = ledger.lease_ttl
    app.state.manager.close()  # type: ignore[attr-defined]
    return ttl  # type: ignore[no-any-return]


def test_the_database_s_ledger_and_the_config_s_take_the_lease_ttl(tmp_path: Path) -> None:
    app = create_app(database=f"sqlite:///{tmp_path / 'all.db'}", lease_ttl=45)
    assert _ledger_ttl(app) == timedelta(seconds=45)
    config = load_config({"ledger": f"sqlite:///{tmp_path / 'budgets.db'}"})
    app = create_app(config, store=str(tmp_path / "runs.db"), lease_ttl=90)
    assert _ledger_ttl(app) == timedelta(seconds=90)
    config.close()
    app = create_app(database=f"sqlite:///{tmp_path / 'other.db'}")  # the default
    assert _ledger_ttl(app) == timedelta(minutes=5)


@pytest.mark.parametrize("bad", [0, -3, True])
def test_a_lease_ttl_that_is_not_positive_is_refused(tmp_path: Path, bad: object) -> None:
    with pytest.raises(ConfigurationError, match="lease_ttl must be a number of seconds > 0"):
        create_app(database=f"sqlite:///{tmp_path / 'all.db'}", lease_ttl=bad)  # type: ignore[arg-type]
    assert not (tmp_path / "all.db").exists()  # refused before anything was opened


def test_leases_must_outlive_the_time_a_dead_replica_takes_to_be_found() -> None:
    # checked before anything is opened: no server is needed to see the refusal
    url = "postgresql://app@127.0.0.1:1/runs"
    with pytest.raises(ConfigurationError, match=r"lease_ttl \(10 s\) must be at least twice"):
        create_app(database=url, lease_ttl=10, stale_after=30)
    with pytest.raises(ConfigurationError, match=r"raise --lease-ttl to 400 or more"):
        create_app(database=url, stale_after=200)  # the default 300 s
