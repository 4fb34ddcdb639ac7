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
