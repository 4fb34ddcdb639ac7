from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from langchain_runtime.api.store import MemoryRunStore
from langchain_runtime.config import RuntimeConfig, load_config
from tests.unit.api._helpers import CONFIG, AppFactory, Gate


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def config() -> RuntimeConfig:
    return load_config(CONFIG)


@pytest.fixture
def gate() -> Iterator[Gate]:
    g = Gate()
    yield g
    g.event.set()


@pytest.fixture
def make_app(config: RuntimeConfig, gate: Gate) -> Iterator[AppFactory]:
    """Builds apps (server tests only: it needs the 'server' extra) and closes them."""
    pytest.importorskip("fastapi", reason="the server tests need the 'server' extra")
    from langchain_runtime.api.server import create_app

    apps: list[Any] = []

    def factory(**kwargs: Any) -> Any:
        kwargs.setdefault("store", MemoryRunStore())
        kwargs.setdefault("workflows", {"gated": gate.orchestrator()})
        kwargs.setdefault("checkpoint_interval", 0.1)
        # the in-process clients' host names (TestClient, ASGITransport) besides loopback
        kwargs.setdefault("allowed_hosts", ["localhost", "testserver", "app", "x"])
        app = create_app(kwargs.pop("config", config), **kwargs)
        apps.append(app)
        return app

    yield factory
    gate.event.set()
    for app in apps:
        app.state.manager.close(timeout=5)


@pytest.fixture
def client(make_app: AppFactory) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    with TestClient(make_app()) as c:
        yield c
