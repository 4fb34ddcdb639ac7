"""Durable run stores: one interface, an SQLite file embedded by default."""

from langchain_runtime.store._base import (
    DurableRunStore,
    RunHeader,
    RunSummary,
    StoredRun,
    TaskRecord,
)

__all__ = ["DurableRunStore", "RunHeader", "RunSummary", "StoredRun", "TaskRecord"]
