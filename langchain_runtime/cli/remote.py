"""The sidecar from the shell: ``serve`` starts it, ``runs ...`` talks to it.

The server and the client live in ``langchain_runtime.api`` and are imported only
when a command needs them, so the rest of the CLI works without them.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Protocol, TypeVar

from rich.console import Console
from rich.markup import escape

from langchain_runtime.cli._fit import Column, print_fitted, summary_title
from langchain_runtime.cli.errors import EXIT_FAILED, CliError
from langchain_runtime.cli.render import (
    format_duration,
    format_money,
    format_tokens,
    print_json,
    to_jsonable,
)
from langchain_runtime.config import load_config

__all__ = ["RemoteRuns", "by_id_or_prefix", "print_event", "resolve", "serve"]

T = TypeVar("T")

_DONE = "completed"


_LOOPBACK = ("localhost", "127.0.0.1", "::1")


def serve(
    *,
    host: str,
    port: int,
    config: Path | None,
    store: str | None,
    token: str | None,
    allowed_hosts: Iterable[str] | None = None,
    limits: Iterable[str] | None = None,
    **database: Any,
) -> None:
    """Start the sidecar HTTP server in the foreground (until Ctrl-C).

    ``database`` (``database=URL, stale_after=S``) goes to ``create_app``.

    Raises:
        CliError: The server is not installed (exit 1), or ``--token ''``.
        ConfigurationError: ``config`` is unreadable or invalid (checked first), or
            a ``--limit`` is.
    """
    if token is not None and not token.strip():
        raise CliError(
            "--token: an empty token would turn authentication off; give a token, or leave "
            "the option out to serve without one"
        )
    serve_api = _load("langchain_runtime.api.server", "serve", "server")
    # A bad file is reported here, with its line, before a port is bound.
    loaded = load_config(config) if config is not None else None
    options: dict[str, Any] = {}
    hosts = [h.strip() for value in allowed_hosts or () for h in value.split(",") if h.strip()]
    if hosts:
        options["allowed_hosts"] = [*_LOOPBACK, *hosts]
    if limits:
        options["limits"] = _load("langchain_runtime.api.server", "parse_limits", "server")(limits)
    serve_api(host=host, port=port, config=loaded, store=store, token=token, **options, **database)


def _load(module: str, name: str, what: str) -> Any:
    """``module.name``, imported now; a one-line error when it cannot be."""
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise CliError(
            f"the sidecar {what} is not available ({exc}); "
            "install it with: pip install 'langchain-runtime[server]'",
            EXIT_FAILED,
        ) from exc


class _Client(Protocol):
    """What these commands use of ``langchain_runtime.api.client.RuntimeClient``."""

    def list_runs(self, **kwargs: Any) -> Any: ...
    def get_run(self, run_id: str) -> Any: ...
    def wait(self, run_id: str, timeout: float) -> Any: ...
    def abort_run(self, run_id: str) -> Any: ...
    def events(self, run_id: str) -> Iterable[Any]: ...


def _plain(value: Any) -> Any:
    """Wire models as JSON data (messages as text)."""
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        value = dump(mode="json")
    return to_jsonable(value)


def _decimal(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value)) if value is not None else None
    except InvalidOperation:
        return None


def _cost(data: Mapping[str, Any]) -> str:
    cost = data.get("cost")
    if isinstance(cost, Mapping):
        return format_money(_decimal(cost.get("amount")), str(cost.get("currency") or "USD"))
    return format_money(_decimal(cost))


def _tokens(data: Mapping[str, Any]) -> str:
    usage = data.get("usage")
    if isinstance(usage, Mapping):
        return format_tokens(usage.get("total_tokens"))
    value = data.get("total_tokens")
    return format_tokens(value if isinstance(value, int) else None)


def _duration(data: Mapping[str, Any]) -> str:
    if isinstance(data.get("duration"), int | float):  # a stored TaskResult
        return format_duration(float(data["duration"]))
    try:
        start = datetime.fromisoformat(str(data["started_at"]))
        end = datetime.fromisoformat(str(data["ended_at"]))
    except (KeyError, TypeError, ValueError):
        return "-"
    return format_duration((end - start).total_seconds())


def _when(value: Any) -> str:
    """``2026-12-01 21:05:09`` (UTC, to the second) from an ISO timestamp."""
    try:
        moment = datetime.fromisoformat(str(value))
    except (TypeError, ValueError):
        return str(value or "")
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _error(data: Mapping[str, Any]) -> str:
    error = data.get("error")
    if isinstance(error, Mapping):
        return str(error.get("message") or error.get("code") or "")
    return ""


#: Most runs searched for a run-id prefix (newest first), so a lookup stays quick.
PREFIX_SCAN = 2000


def _by_prefix(client: _Client, prefix: str, not_found: Exception) -> str:
    """The one run whose id starts with ``prefix`` (among the newest PREFIX_SCAN).

    Raises:
        CliError: Several runs match.
        Exception: ``not_found`` again when none does.
    """
    matches: list[str] = []
    offset = 0
    while offset < PREFIX_SCAN:
        page = _plain(client.list_runs(limit=500, offset=offset))
        items = page.get("items", []) if isinstance(page, Mapping) else []
        matches += [str(r["run_id"]) for r in items if str(r.get("run_id", "")).startswith(prefix)]
        offset += 500
        total = page.get("total") if isinstance(page, Mapping) else None
        if not items or not isinstance(total, int) or offset >= total:
            break
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise not_found
    shown = ", ".join(matches[:5]) + (", ..." if len(matches) > 5 else "")
    raise CliError(
        f"run id prefix {prefix!r} matches {len(matches)} runs ({shown}); give more of the id"
    )


def _refused(exc: BaseException) -> bool:
    """True when ``exc`` says nothing listens at the address (not a timeout or reset)."""
    import httpx

    cause = exc.__cause__
    return isinstance(cause, httpx.ConnectError) and not isinstance(exc, TimeoutError)


def resolve(client: _Client, run_id: str) -> str:
    """``run_id``, or the one run whose id starts with it (a unique prefix).

    Raises:
        RunNotFoundError: No run has that id or prefix (the server's own error).
        CliError: Several runs match the prefix.
    """
    try:
        client.get_run(run_id)
    except Exception as exc:
        if getattr(exc, "code", None) != "run_not_found":
            raise
        return _by_prefix(client, run_id, exc)
    return run_id


def by_id_or_prefix(client: _Client, run_id: str, call: Callable[[str], T]) -> tuple[str, T]:
    """``call(run_id)``; when no run has that id, ``call`` on the one run whose id
    starts with it. Returns the id used and what ``call`` returned."""
    try:
        return run_id, call(run_id)
    except Exception as exc:
        if getattr(exc, "code", None) != "run_not_found":
            raise
        full = _by_prefix(client, run_id, exc)
    return full, call(full)


class RemoteRuns:
    """``runs list|status|wait|abort|events`` against one sidecar.

    Args:
        url: The sidecar's base URL.
        token: Its bearer token, if it needs one.
        out: Where results are shown.
        as_json: Print JSON for scripts instead of tables.
    """

    def __init__(self, url: str, token: str | None, out: Console, *, as_json: bool) -> None:
        self.url = url
        self.token = token
        self.out = out
        self.as_json = as_json

    @contextlib.contextmanager
    def client(self) -> Iterator[_Client]:
        """A client of the sidecar; "no sidecar at URL" when nothing listens there."""
        make = _load("langchain_runtime.api.client", "RuntimeClient", "client")
        client: _Client = make(self.url, token=self.token)
        try:
            yield client
        except ConnectionError as exc:
            if not _refused(exc):
                raise
            raise CliError(
                f"no sidecar at {self.url}: start one with `langchain-runtime serve`, "
                "pass --url, or use --store FILE",
                EXIT_FAILED,
            ) from exc
        finally:
            close = getattr(client, "close", None)
            if callable(close):
                close()

    # ------------------------------------------------------------------ commands
    def list(self, *, state: str | None = None, limit: int | None = None) -> None:
        kwargs: dict[str, Any] = {}
        if state is not None:
            kwargs["state"] = state
        if limit is not None:
            kwargs["limit"] = limit
        with self.client() as client:
            data = _plain(client.list_runs(**kwargs))
        if self.as_json:
            print_json(data)
            return
        items = data.get("items", []) if isinstance(data, Mapping) else data
        rows = []
        for run in items:
            tasks = run.get("tasks")
            rows.append(
                [
                    escape(str(run.get("run_id", ""))),
                    escape(str(run.get("workflow") or "")),
                    escape(str(run.get("state", ""))),
                    str(len(tasks) if isinstance(tasks, Mapping) else tasks or 0),
                    _tokens(run),
                    _cost(run),
                    escape(_when(run.get("created_at"))),
                ]
            )
        names = ("run", "workflow", "state", "tasks", "tokens", "cost", "created")
        print_fitted(
            self.out,
            title=f"Runs at {escape(self.url)}",
            columns=[
                Column(n, "right" if n in ("tasks", "tokens", "cost") else "left") for n in names
            ],
            rows=rows,
        )
        total = data.get("total") if isinstance(data, Mapping) else None
        if isinstance(total, int) and total > len(items):
            self.out.print(f"{len(items)} of {total} runs shown (--limit to see more)")

    def status(self, run_id: str) -> None:
        """A run's status; ``run_id`` may be a unique prefix of the run's id."""
        with self.client() as client:
            _, data = by_id_or_prefix(client, run_id, client.get_run)
            self.show(_plain(data))

    def wait(self, run_id: str, timeout: float) -> None:
        """Wait for the run to end; exit 1 unless it completed."""
        with self.client() as client:
            run_id, data = by_id_or_prefix(client, run_id, lambda rid: client.wait(rid, timeout))
            data = _plain(data)
        self.show(data)
        state = str(data.get("state", ""))
        if state != _DONE:
            reason = _error(data)
            raise CliError(
                f"run {run_id} ended {state}" + (f": {reason}" if reason else ""), EXIT_FAILED
            )

    def abort(self, run_id: str) -> None:
        with self.client() as client:
            run_id, data = by_id_or_prefix(client, run_id, client.abort_run)
            data = _plain(data)
        if self.as_json:
            print_json(data)
        else:
            self.out.print(f"run {escape(run_id)}: {escape(str(data.get('state', 'aborting')))}")

    def events(self, run_id: str) -> None:
        """Each event as it is committed (JSON lines with ``--json``), until the run ends."""
        with self.client() as client:
            for event in client.events(resolve(client, run_id)):
                print_event(self.out, _plain(event), as_json=self.as_json)

    # ------------------------------------------------------------------ display
    def show(self, data: Mapping[str, Any]) -> None:
        if self.as_json:
            print_json(data)
            return
        title = summary_title(
            self.out,
            f"Run {escape(str(data.get('run_id', '')))}",
            f"{escape(str(data.get('state', '')))} · {_tokens(data)} tokens · {_cost(data)}",
        )
        tasks = data.get("tasks")
        rows, notes = [], {}
        for i, (tid, task) in enumerate(tasks.items() if isinstance(tasks, Mapping) else ()):
            rows.append(
                [
                    escape(str(tid)),
                    escape(str(task.get("state", ""))),
                    _duration(task),
                    _tokens(task),
                    _cost(task),
                ]
            )
            notes[i] = escape(_error(task))
        columns = [Column("task"), Column("state"), Column("duration", "right"),
                   Column("tokens", "right"), Column("cost", "right")]  # fmt: skip
        print_fitted(self.out, title=title, columns=columns, rows=rows, notes=notes)
        if _error(data):
            self.out.print(f"error: {escape(_error(data))}")


def print_event(out: Console, data: Mapping[str, Any], *, as_json: bool) -> None:
    """One run event: a JSON line, or ``seq type [task] {data}``."""
    import json

    if as_json:
        out.print(json.dumps(data, ensure_ascii=False), markup=False, highlight=False,
                  soft_wrap=True)  # fmt: skip
        return
    task = f" {data['task_id']}" if data.get("task_id") else ""
    extra = json.dumps(data.get("data") or {}, ensure_ascii=False)
    out.print(f"{data.get('seq', '')} {data.get('type', '')}{task} {extra}", markup=False,
              highlight=False, soft_wrap=True)  # fmt: skip
