"""The sidecar on a store file: refused at start when damaged, 503 from /healthz when broken."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from langchain_runtime import SQLiteRunStore, StoreError
from langchain_runtime.api.store import RunRecord
from langchain_runtime.config import load_config
from tests.unit.api._helpers import CONFIG

pytest.importorskip("fastapi")


def test_healthz_reports_the_store(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from langchain_runtime.api.server import create_app

    path = tmp_path / "runs.db"
    store = SQLiteRunStore(path, exclusive=True)
    with TestClient(create_app(load_config(CONFIG), store=store)) as client:
        assert client.get("/healthz").status_code == 200
        path.unlink()  # the file is gone from under the server
        response = client.get("/healthz")
        assert response.status_code == 503
        body = response.json()
        assert body["code"] == "store_error" and str(path) in body["message"]
    store.close()


def test_a_server_does_not_start_on_a_damaged_store(tmp_path: Path) -> None:
    from langchain_runtime.api.server import create_app

    path = tmp_path / "runs.db"
    store = SQLiteRunStore(path)
    for i in range(30):
        store.create(RunRecord(f"r{i}", "completed", request={"pad": "x" * 3000}))
    store.close()
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.seek(size // 2)
        f.write(os.urandom(8192))
    with pytest.raises(StoreError, match="is damaged"):
        create_app(load_config(CONFIG), store=str(path))
