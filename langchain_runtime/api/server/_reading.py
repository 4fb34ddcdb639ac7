"""Reading runs (status, lists, events): the :class:`RunReading` part of ``RunManager``."""

from __future__ import annotations

import inspect
import json
import threading
from typing import TYPE_CHECKING, Any

from langchain_runtime.api.errors import RunNotFoundError
from langchain_runtime.api.schemas import ApiRunState, RunPage, RunStatus, RunSummary, TaskStatus
from langchain_runtime.api.server._durable import interrupted_record
from langchain_runtime.api.server._keys import Principal
from langchain_runtime.api.server._live import (
    LIST_PAGE,
    RESUMABLE,
    Live,
    dumps,
    encode_event,
    now,
    owner_of,
    visible,
)
from langchain_runtime.api.server._replicas import remote_status
from langchain_runtime.api.store import RunRecord, RunStore
from langchain_runtime.domain import RunResult

__all__ = ["RunReading"]


class RunReading:
    """What ``GET`` answers: a run's status (live from its handle, else from the
    store), pages of runs, events; each only for a key that may see the run."""

    store: RunStore
    _lock: threading.Lock
    _live: dict[str, Live]

    if TYPE_CHECKING:

        def _elsewhere(self, record: RunRecord) -> Any: ...

        @staticmethod
        def _state(live: Live, state: str) -> ApiRunState: ...

        def _live_status(self, live: Live, result: RunResult, state: ApiRunState) -> RunStatus: ...

    def _get_live(self, run_id: str) -> Live | None:
        with self._lock:
            return self._live.get(run_id)

    def _load(self, run_id: str, principal: Principal | None = None) -> RunRecord:
        record = self.store.load(run_id)
        if record is None or not visible(record, principal):
            raise RunNotFoundError(f"no run with id {run_id!r}")
        return record

    def _visible_live(self, run_id: str, principal: Principal | None) -> Live | None:
        """The live run if ``principal`` may see it; None if not live; 404 if not theirs."""
        live = self._get_live(run_id)
        if live is not None and not visible(live.record, principal):
            raise RunNotFoundError(f"no run with id {run_id!r}")
        return live

    def _live_body(self, live: Live) -> str:
        """A live run's status as JSON text, re-encoding only the tasks that changed.

        A task's result object stays the same until the task changes, so a poll of a
        long run costs what changed since the last one, not a re-encoding of every
        task (which made a 5,000-task run spend most of its time answering polls).
        """
        snap = live.handle.snapshot()
        state = self._state(live, snap.state.value)
        head = self._live_status(live, snap.model_copy(update={"tasks": {}}), state)
        parts = []
        cache = live.task_json
        for tid, tr in snap.tasks.items():
            # a task not started yet is a fresh placeholder in every snapshot: by state
            key: Any = tr.state if tr.model_fields_set <= {"task_id", "state"} else tr
            hit = cache.get(tid)
            if hit is None or hit[0] is not key:
                encoded = dumps(TaskStatus.from_result(tr).model_dump(mode="json"))
                hit = (key, f"{dumps(tid)}:{encoded}")
                cache[tid] = hit
            parts.append(hit[1])
        body = head.model_dump(mode="json")
        body.pop("tasks", None)
        text = dumps(body)
        return f'{text[:-1]},"tasks":{{{",".join(parts)}}}}}'

    def status_body(self, run_id: str, principal: Principal | None = None) -> str:
        """The run's status as JSON text (what ``GET /api/v1/runs/{id}`` answers)."""
        live = self._visible_live(run_id, principal)
        if live is not None:
            return self._live_body(live)
        return dumps(self.status(run_id, principal))

    def status(self, run_id: str, principal: Principal | None = None) -> dict[str, Any]:
        """The run's status as JSON: live from its handle, else from the store."""
        live = self._visible_live(run_id, principal)
        if live is not None:
            result: dict[str, Any] = json.loads(self._live_body(live))
            return result
        record = self._load(run_id, principal)
        stored = self._elsewhere(record)
        if stored is not None and stored.live:
            return remote_status(record, stored)
        if stored is not None and stored.state == "interrupted":
            # its replica stopped: what the next sweep will write
            return dict(
                interrupted_record(record, stored, RESUMABLE.format(run_id=run_id)).status or {}
            )
        if record.status is not None:
            return dict(record.status)
        return RunStatus(
            run_id=run_id,
            state=record.state,
            workflow=record.workflow,
            created_at=record.created_at,
            updated_at=record.updated_at,
        ).model_dump(mode="json")

    def _list(
        self, limit: int, offset: int, state: str | None, principal: Principal | None
    ) -> tuple[list[RunRecord], int]:
        """A page of the runs ``principal`` may see, and how many there are."""
        if principal is None or principal.admin:
            return self.store.list(limit=limit, offset=offset, state=state)
        if "owner" in inspect.signature(self.store.list).parameters:  # filtered in the store
            records, total = self.store.list(  # type: ignore[call-arg]
                limit=limit, offset=offset, state=state, owner=principal.name
            )
            return records, total
        # a store that cannot filter by owner: read it all, a page at a time
        mine: list[RunRecord] = []
        start = 0
        while True:
            page, total = self.store.list(limit=LIST_PAGE, offset=start, state=state)
            mine += [r for r in page if owner_of(r) == principal.name]
            start += len(page)
            if not page or start >= total:
                break
        return mine[offset : offset + limit], len(mine)

    def list_runs(
        self,
        *,
        limit: int,
        offset: int,
        state: str | None,
        principal: Principal | None = None,
    ) -> RunPage:
        records, total = self._list(limit, offset, state, principal)
        items = []
        for record in records:
            live = self._get_live(record.run_id)
            if live is not None:  # its record is as of its start: read the run itself
                snap = live.handle.snapshot()
                items.append(
                    RunSummary(
                        run_id=record.run_id,
                        state=self._state(live, snap.state.value),
                        workflow=record.workflow,
                        created_at=record.created_at,
                        updated_at=now(),
                        tasks=len(snap.tasks),
                        total_tokens=snap.usage.total_tokens,
                        cost=snap.cost,
                    )
                )
                continue
            status = dict(record.status or {})
            cost = status.get("cost") or {}
            items.append(
                RunSummary(
                    run_id=record.run_id,
                    state=record.state,
                    workflow=record.workflow,
                    created_at=record.created_at,
                    updated_at=record.updated_at,
                    tasks=len(status.get("tasks") or {}),
                    total_tokens=int((status.get("usage") or {}).get("total_tokens") or 0),
                    cost=cost,
                )
            )
        return RunPage(items=items, total=total, limit=limit, offset=offset)

    def live_events(
        self, run_id: str, after: int, principal: Principal | None = None
    ) -> list[dict[str, Any]] | None:
        """Events after ``after`` of a live run, or None when the run is not live."""
        live = self._visible_live(run_id, principal)
        if live is None:
            return None
        # seq is the index in the committed log
        return [encode_event(e, run_id) for e in live.handle.events()[after + 1 :]]

    def stored_events(
        self, run_id: str, after: int, principal: Principal | None = None
    ) -> tuple[list[dict[str, Any]], str]:
        """Stored events after ``after`` and the run's state (raises when unknown)."""
        record = self._load(run_id, principal)
        return self.store.events(run_id, after), record.state

    def active(self) -> int:
        with self._lock:
            return len(self._live)

    def task_count(self, run_id: str, principal: Principal | None = None) -> int | None:
        """How many tasks a live run has (pending ones included), or None if not live."""
        live = self._visible_live(run_id, principal)
        return None if live is None else len(live.handle.snapshot().tasks)
