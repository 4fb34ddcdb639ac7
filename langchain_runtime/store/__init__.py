"""Durable run stores: one interface, an SQLite file embedded by default, or PostgreSQL."""

from langchain_runtime.store._base import (
    DELETED,
    DurableRunStore,
    MailboxRequest,
    RunHeader,
    RunMailbox,
    RunSummary,
    SharedRunStore,
    StoredRun,
    TaskRecord,
)
from langchain_runtime.store._codec import decode, encode
from langchain_runtime.store._owner import local_owner
from langchain_runtime.store.postgres import PostgresRunStore
from langchain_runtime.store.sqlite import SQLiteRunStore

__all__ = [
    "DELETED",
    "DurableRunStore",
    "MailboxRequest",
    "PostgresRunStore",
    "RunHeader",
    "RunMailbox",
    "RunSummary",
    "SQLiteRunStore",
    "SharedRunStore",
    "StoredRun",
    "TaskRecord",
    "decode",
    "encode",
    "local_owner",
]
