"""Runs kept in a store file: ``run --store``, ``resume`` and ``runs list|status|wait|events
--store``.

``run FILE --store PATH`` records, beside the durable run, where its graph comes
from (the workflow file, the workflow's name and the command's options), so
``resume RUN_ID --store PATH`` needs nothing else: it loads the same workflow again,
and the orchestrator refuses it if the file changed what the run's tasks do.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from langchain_runtime.cli._fit import Column, print_fitted
from langchain_runtime.cli.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, CliError
from langchain_runtime.cli.options import load, parse_budget, with_overrides
from langchain_runtime.cli.render import format_money, print_json, print_run, run_json
from langchain_runtime.domain import Budget, RunResult, RunState
from langchain_runtime.errors import StoreError
from langchain_runtime.orchestration import Orchestrator
from langchain_runtime.store import SQLiteRunStore

__all__ = [
    "events_stored",
    "list_stored",
    "open_store",
    "resume_hint",
    "resume_local",
    "resume_remote",
    "save_source",
    "status_stored",
    "stopped_on",
    "wait_stored",
]

#: Seconds between reads of a store file that another process is writing.
_POLL = 0.2

#: ``source["kind"]`` of a run started by ``langchain-runtime run --store``.
CLI_SOURCE = "cli"


def open_store(path: str | Path, *, create: bool) -> SQLiteRunStore:
    """The store at ``path``; without ``create``, a missing file is a usage error.

    Raises:
        CliError: The file is missing (without ``create``), damaged, or not a run
            store (exit 2: the option names a wrong file).
    """
    if not create and str(path) != ":memory:" and not Path(path).exists():
        raise CliError(
            f"no run store at {path}: --store names a file written by "
            "`langchain-runtime run --store` (or `serve --store`)"
        )
    try:
        return SQLiteRunStore(path)
    except StoreError as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc


def resume_hint(run_id: str, store: str | Path, over: Budget | None = None) -> str:
    """The command that resumes ``run_id``.

    Args:
        over: The budget a run stopped on: the command then raises its limits (to
            twice the old ones), since resuming under the same limits stops again.
    """
    hint = f"langchain-runtime resume {run_id} --store {store}"
    if over is not None and over.max_cost is not None:
        hint += f" --max-cost {(over.max_cost * 2).normalize():f}"
    if over is not None and over.max_tokens is not None:
        hint += f" --max-tokens {over.max_tokens * 2}"
    return hint


def stopped_on(result: RunResult, budget: Budget | None) -> Budget | None:
    """``budget`` when ``result`` stopped on it (to suggest higher limits), else None."""
    return budget if result.state is RunState.BUDGET_EXCEEDED else None


def save_source(
    store: SQLiteRunStore,
    run_id: str,
    *,
    file: Path,
    workflow: str,
    budget: str | None,
    max_parallelism: int | None,
) -> None:
    """Record what ``resume`` rebuilds the run from."""
    store.save_source(
        run_id,
        {
            "kind": CLI_SOURCE,
            "file": str(file.resolve()),
            "workflow": workflow,
            "budget": budget,
            "max_parallelism": max_parallelism,
        },
    )


def _run_id(store: SQLiteRunStore, given: str) -> str:
    """``given``, or the one stored run whose id starts with it."""
    if store.load_run(given) is not None:
        return given
    matches = store.match_run_ids(given, limit=5)
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise CliError(f"run id prefix {given!r} matches several runs: {', '.join(matches)}")
    raise CliError(f"no run {given!r} in run store {store.path}")


def _new_budget(
    stored_policy: Mapping[str, Any], max_cost: str | None, max_tokens: int | None
) -> Budget | None:
    """The stored budget with the limits given replaced (None: keep the stored one)."""
    if max_cost is None and max_tokens is None:
        return None
    raw = stored_policy.get("budget")
    budget = Budget.model_validate(raw) if isinstance(raw, Mapping) else Budget()
    changes: dict[str, Any] = {}
    if max_cost is not None:
        changes["max_cost"] = parse_budget(max_cost)
    if max_tokens is not None:
        changes["max_tokens"] = max_tokens
    return budget.model_copy(update=changes)


def _orchestrator(
    source: Mapping[str, Any], file: Path | None, store: SQLiteRunStore
) -> Orchestrator:
    path = file or Path(str(source.get("file") or ""))
    if source.get("kind") != CLI_SOURCE and file is None:
        raise CliError(
            "this run was not started by `langchain-runtime run --store`; "
            "give its workflow file with --file",
            EXIT_USAGE,
        )
    if not path.is_file():
        raise CliError(f"the run's workflow file {path} is gone; give it with --file", EXIT_USAGE)
    loaded = load(path, source.get("workflow"))
    amount: Decimal | None = parse_budget(source.get("budget"))
    policy = with_overrides(
        loaded.policy, budget=amount, max_parallelism=source.get("max_parallelism")
    )
    built = loaded.config.build_workflow(loaded.name, policy_override=policy)
    # the whole RunResult (not one output task's output), kept in the store
    resumed: Orchestrator = built.model_copy(update={"output": None, "store": store})
    return resumed


def resume_local(
    run_id: str,
    *,
    store_path: str,
    max_cost: str | None,
    max_tokens: int | None,
    file: Path | None,
    as_json: bool,
    out: Console,
    err: Console,
) -> None:
    """Resume a run of the store file: completed tasks come back, the rest run.

    Raises:
        CliError: No such run (exit 2); the run did not complete (exit 1); Ctrl-C (130).
        ResumeError: The run is still live, or its workflow changed (exit 1).
    """
    store = open_store(store_path, create=False)
    try:
        rid = _run_id(store, run_id)
        stored = store.load_run(rid)
        assert stored is not None  # _run_id found it
        source = store.load_source(rid) or {}
        orchestrator = _orchestrator(source, file, store)
        budget = _new_budget(stored.header.policy, max_cost, max_tokens)
        try:
            result: RunResult = asyncio.run(orchestrator.aresume(rid, budget=budget))
        except KeyboardInterrupt:
            raise CliError(
                f"interrupted (Ctrl-C); the run is kept: {resume_hint(rid, store_path)}",
                EXIT_INTERRUPTED,
            ) from None
    finally:
        store.close()
    if as_json:
        print_json(run_json(result))
    else:
        restored = sum(1 for t in result.tasks.values() if t.restored)
        err.print(f"run {escape(rid)}: {restored} task(s) restored from {escape(store_path)}")
        print_run(out, result, list(orchestrator.graph.order))
    if not result.ok:
        reason = f": {result.error.message}" if result.error is not None else ""
        hint = resume_hint(
            rid, store_path, stopped_on(result, budget or orchestrator.policy.budget)
        )
        raise CliError(f"run {rid} ended {result.state.value}{reason}; {hint}", EXIT_FAILED)


def resume_remote(
    run_id: str,
    *,
    url: str,
    token: str | None,
    max_cost: str | None,
    max_tokens: int | None,
    as_json: bool,
    out: Console,
) -> None:
    """Ask a sidecar to resume one of its runs (it answers at once)."""
    from langchain_runtime.cli.remote import RemoteRuns, by_id_or_prefix

    budget: dict[str, Any] | None = None
    if max_cost is not None or max_tokens is not None:
        budget = {}
        if max_cost is not None:
            budget["max_cost"] = str(parse_budget(max_cost))
        if max_tokens is not None:
            budget["max_tokens"] = max_tokens
    remote = RemoteRuns(url, token, out, as_json=as_json)
    with remote.client() as client:
        resume = client.resume_run  # type: ignore[attr-defined]
        run_id, accepted = by_id_or_prefix(client, run_id, lambda rid: resume(rid, budget))
    data = accepted.model_dump(mode="json") if hasattr(accepted, "model_dump") else accepted
    if as_json:
        print_json(data)
    else:
        out.print(f"run {escape(run_id)}: {escape(str(data.get('state', 'running')))} (resumed)")


def _stored_data(store: SQLiteRunStore, rid: str) -> tuple[dict[str, Any], bool]:
    """A stored run as ``runs status`` shows it (tasks not committed yet ``pending``),
    and whether it is still executing (``running`` in a live process)."""
    stored = store.load_run(rid)
    if stored is None:
        raise CliError(f"no run {rid!r} in run store {store.path}")
    tasks: dict[str, Any] = {tid: {"state": "pending"} for tid in stored.header.fingerprint}
    total_tokens = 0
    total_cost = Decimal(0)
    for tid, record in stored.tasks.items():
        result = dict(record.result)
        result.pop("output", None)
        tasks[tid] = {**result, "state": record.state}
        usage = result.get("usage")
        cost = result.get("cost")
        if isinstance(usage, Mapping) and isinstance(usage.get("total_tokens"), int):
            total_tokens += usage["total_tokens"]
        if isinstance(cost, Mapping) and cost.get("amount") is not None:
            total_cost += Decimal(str(cost["amount"]))
    data = {
        "run_id": rid,
        "name": stored.header.name,
        "state": stored.state,
        "live": stored.live,
        "usage": {"total_tokens": total_tokens},
        "cost": {"amount": str(total_cost), "currency": "USD"},
        "tasks": tasks,
        "error": dict(stored.error) if stored.error is not None else None,
    }
    return data, stored.state == "running" and stored.live


def status_stored(run_id: str, *, store_path: str, as_json: bool, out: Console) -> None:
    """A stored run's state, and each task's (tasks not committed yet show ``pending``).

    Raises:
        CliError: No such store file or run (exit 2).
    """
    from langchain_runtime.cli.remote import RemoteRuns

    store = open_store(store_path, create=False)
    try:
        rid = _run_id(store, run_id)
        data, _ = _stored_data(store, rid)
    finally:
        store.close()
    RemoteRuns(store_path, None, out, as_json=as_json).show(data)
    if not as_json and data["state"] not in ("completed", "running"):
        out.print(f"resume it with: {resume_hint(rid, store_path)}", soft_wrap=True)


def wait_stored(
    run_id: str, *, store_path: str, timeout: float, as_json: bool, out: Console
) -> None:
    """Wait for a run another process executes on a store file to end (polling the file).

    Raises:
        CliError: No such file or run (exit 2); the run did not complete, or was still
            running after ``timeout`` seconds (exit 1).
    """
    from langchain_runtime.cli.remote import RemoteRuns

    store = open_store(store_path, create=False)
    try:
        rid = _run_id(store, run_id)
        deadline = time.monotonic() + timeout
        # the cheap liveness read while it runs; the whole run once, at the end
        while store.is_live(rid) and time.monotonic() < deadline:
            time.sleep(min(_POLL, max(0.0, deadline - time.monotonic())))
        data, running = _stored_data(store, rid)
    finally:
        store.close()
    RemoteRuns(store_path, None, out, as_json=as_json).show(data)
    if running:
        raise CliError(f"run {rid} is still running after {timeout:g}s", EXIT_FAILED)
    if data["state"] != "completed":
        error = data.get("error") or {}
        reason = f": {error.get('message')}" if error.get("message") else ""
        if not as_json:
            out.print(f"resume it with: {resume_hint(rid, store_path)}", soft_wrap=True)
        raise CliError(f"run {rid} ended {data['state']}{reason}", EXIT_FAILED)


def events_stored(
    run_id: str, *, store_path: str, timeout: float, as_json: bool, out: Console
) -> None:
    """A stored run's events, then new ones as its process commits them, until it ends.

    Raises:
        CliError: No such file or run (exit 2); the run was still running after
            ``timeout`` seconds (exit 1).
    """
    from langchain_runtime.cli.remote import print_event

    store = open_store(store_path, create=False)
    try:
        rid = _run_id(store, run_id)
        deadline = time.monotonic() + timeout
        after = -1
        while True:
            running = store.is_live(rid)  # before reading: no event is missed
            for event in store.events(rid, after):
                print_event(out, event, as_json=as_json)
                after = int(event["seq"])
            if not running:
                return
            if time.monotonic() >= deadline:
                raise CliError(f"run {rid} is still running after {timeout:g}s", EXIT_FAILED)
            time.sleep(min(_POLL, max(0.0, deadline - time.monotonic())))
    finally:
        store.close()


def list_stored(
    store_path: str, *, state: str | None, limit: int | None, as_json: bool, out: Console
) -> None:
    """The runs of a store file, newest first."""
    store = open_store(store_path, create=False)
    try:
        page, total = store.list_runs(limit=limit or 50, state=state)
    finally:
        store.close()
    if as_json:
        print_json(
            {
                "items": [
                    {
                        "run_id": s.run_id,
                        "name": s.name,
                        "state": s.state,
                        "tasks": s.tasks,
                        "completed": s.completed,
                        "cost": s.cost,
                        "created_at": s.created_at.isoformat(),
                        "updated_at": s.updated_at.isoformat(),
                    }
                    for s in page
                ],
                "total": total,
            }
        )
        return
    rows = [
        [
            escape(s.run_id),
            escape(s.name),
            escape(s.state),
            f"{s.completed}/{s.tasks}",
            format_money(Decimal(s.cost) if s.cost is not None else None),
            s.updated_at.strftime("%Y-%m-%d %H:%M:%S"),
        ]
        for s in page
    ]
    columns = [Column("run"), Column("name"), Column("state"), Column("done", "right"),
               Column("cost", "right"), Column("updated")]  # fmt: skip
    print_fitted(out, title=f"Runs in {escape(store_path)}", columns=columns, rows=rows)
    if total > len(page):
        out.print(f"{len(page)} of {total} runs shown (--limit to see more)")
    resumable = [s for s in page if s.state not in ("completed", "running")]
    if resumable:
        out.print(f"resume one with: {resume_hint('RUN_ID', store_path)}")
