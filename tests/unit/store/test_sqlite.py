"""What only the SQLite store has: a file (and ``:memory:``). The rest is in test_stores.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from langchain_runtime import SQLiteRunStore, StoreError
from langchain_runtime.api.store import SqliteRunStore
from tests.unit.store._helpers import header


def test_the_sidecar_name_is_the_same_class() -> None:
    assert SqliteRunStore is SQLiteRunStore


def test_check_reports_a_healthy_store_and_a_deleted_file(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    store = SQLiteRunStore(path)
    assert store.check() is None
    path.unlink()
    problem = store.check()
    assert problem is not None and str(path) in problem and "deleted or replaced" in problem
    store.close()
    assert "closed" in (store.check() or "")
    with pytest.raises(StoreError, match="closed"):
        store.load_run("r1")


def test_memory_store_works_without_a_file() -> None:
    store = SQLiteRunStore(":memory:")
    store.begin_run(header())
    store.finish_run("r1", "completed")
    assert store.load_run("r1").state == "completed"  # type: ignore[union-attr]
    assert store.check() is None
    store.close()
