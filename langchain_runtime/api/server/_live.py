"""What the server's run manager keeps of a run, and the small pieces its parts share.

:class:`Live` is a run executing in this process; the functions read the server's own
keys of a stored request (who submitted it, its scopes) and encode what the API sends.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from pydantic_core import to_jsonable_python

from langchain_runtime.api.server._keys import Principal
from langchain_runtime.api.server._replicas import ABORT_KEY
from langchain_runtime.api.store import RunRecord
from langchain_runtime.domain import RunEvent, RunResult
from langchain_runtime.errors import (
    LangChainRuntimeError,
    ResumeError,
    RunAbortedError,
    RunFinishedError,
)
from langchain_runtime.orchestration import RunHandle
from langchain_runtime.store import StoredRun

__all__ = [
    "INTERRUPTED",
    "LIST_PAGE",
    "OWNER_KEY",
    "RESUMABLE",
    "SCOPES_KEY",
    "SHUT_DOWN",
    "UNFINISHED",
    "Live",
    "client_request",
    "dumps",
    "encode_event",
    "finished_error",
    "handle_snapshot_or_empty",
    "not_executing",
    "now",
    "owner_of",
    "refused",
    "visible",
]

logger = logging.getLogger("langchain_runtime.api.server._manager")

INTERRUPTED = "the server stopped while this run was in flight; it was not resumed"
RESUMABLE = (
    "the server stopped while this run was in flight; its completed tasks are kept: "
    "resume it with POST /api/v1/runs/{run_id}/resume"
)
SHUT_DOWN = "the server shut down before this run ended"
#: Keys of a stored request that are the server's, not the client's: who submitted
#: the run (an API key's name) and the ledger scopes its calls reserve in.
OWNER_KEY = "_owner"
SCOPES_KEY = "_scopes"
LIST_PAGE = 500
UNFINISHED = ("pending", "running", "aborting")


def client_request(request: Mapping[str, Any]) -> dict[str, Any]:
    """A stored request without the server's own keys (what the client sent)."""
    return {k: v for k, v in request.items() if k not in (OWNER_KEY, SCOPES_KEY, ABORT_KEY)}


def owner_of(record: RunRecord) -> str | None:
    """The name of the API key that submitted the run (None: no keys were in use)."""
    owner = record.request.get(OWNER_KEY)
    return owner if isinstance(owner, str) else None


def visible(record: RunRecord, principal: Principal | None) -> bool:
    """Whether ``principal`` may see the run: the single user and admins see all."""
    return principal is None or principal.admin or owner_of(record) == principal.name


def refused(message: str, code: str) -> ResumeError:
    exc = ResumeError(message)
    exc.code = code  # run_live (409) or resume_refused (422): see api.errors.ERROR_TABLE
    return exc


def finished_error(run_id: str, state: str) -> LangChainRuntimeError:
    """The error of a change asked of a run that has ended in ``state``."""
    if state == "aborted":
        return RunAbortedError(f"run {run_id} was aborted")
    return RunFinishedError(f"run {run_id} has already finished ({state})")


def not_executing(record: RunRecord, stored: StoredRun | None) -> LangChainRuntimeError:
    """Why a run that executes nowhere cannot be changed: it ended, or its replica
    stopped (``stored``: its durable run, if any)."""
    run_id = record.run_id
    if stored is not None and record.state in UNFINISHED:  # its record not saved yet
        if stored.state not in ("running", "interrupted"):
            return finished_error(run_id, stored.state)
        return RunFinishedError(f"run {run_id} was interrupted (its replica stopped)")
    return finished_error(run_id, record.state)


def now() -> datetime:
    return datetime.now(timezone.utc)


def encode_event(event: RunEvent, run_id: str) -> dict[str, Any]:
    """A committed event as JSON, under the API's run id."""
    return {
        "seq": event.seq,
        "type": event.type,
        "run_id": run_id,
        "task_id": event.task_id,
        "data": to_jsonable_python(event.data, fallback=str),
        "ts": event.ts.isoformat(),
    }


@dataclass
class Live:
    run_id: str
    handle: RunHandle
    record: RunRecord
    default_model: str | None
    started: float
    aborting: bool = False
    saved_seq: int = -1
    #: task id -> (the result it was encoded from, or a placeholder's state; its JSON
    #: object member, id included)
    task_json: dict[str, tuple[Any, str]] = field(default_factory=dict)


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def handle_snapshot_or_empty(live: Live) -> RunResult:
    try:
        return live.handle.snapshot()
    except Exception:
        logger.exception("no snapshot of run %s", live.run_id)
        return RunResult(run_id=live.run_id, state="failed")
