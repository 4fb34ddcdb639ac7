"""The runtime as an HTTP sidecar (FastAPI + uvicorn; ``pip install 'langchain-runtime[server]'``).

Routes (JSON; errors are ``{"code", "message"}``)::

    POST /api/v1/runs                 202 {run_id, state}: a registered workflow or tasks
    GET  /api/v1/runs                 a page of runs (?limit=&offset=&state=)
    GET  /api/v1/runs/{id}            state, every task, totals
    POST /api/v1/runs/{id}/abort      202 {run_id, state: "aborting"}
    POST /api/v1/runs/{id}/tasks      202: add a task to the live run
    GET  /api/v1/runs/{id}/events     server-sent events, resumable (Last-Event-ID)
    POST /api/v1/runs/{id}/resume     202: resume a stored run
    GET  /api/v1/budgets              the shared-budget scopes this key may read
    GET  /api/v1/budgets/{scope}      a scope's limits, spent, reserved, remaining
    PUT  /api/v1/budgets/{scope}      set a scope's limits
    GET  /healthz                     liveness (no token needed)
    GET  /metrics                     Prometheus text

Only loopback ``Host`` names are served unless ``allowed_hosts`` widens them (a
web page that rebinds its domain to 127.0.0.1 gets 403), and a browser's
cross-origin request may not change anything. :class:`ServerLimits` bounds what one
request may ask (JSON depth, tasks, prompt size, parallelism) and how long a client
may take to send it.

Authentication is one of: none (loopback use), a single bearer ``token`` (one user),
or the config's API keys (``server: {api_keys: [...]}``, stored hashed): each key
owns the runs it submits (another key's run is 404, as if it did not exist), its
runs reserve in its ``scopes`` on the server's ledger, and it reads and sets only
those scopes' budgets; an ``admin`` key sees and steers everything. A token and
API keys together is a :class:`~langchain_runtime.errors.ConfigurationError`.

Example:
    >>> from langchain_runtime.api.server import create_app  # doctest: +SKIP
    >>> app = create_app(store=":memory:", token="s3cret")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_runtime.api._calls import TOKEN_ENV
from langchain_runtime.api.server._limits import LOOPBACK_HOSTS, ServerLimits, parse_limits
from langchain_runtime.api.store import RunStore, SqliteRunStore
from langchain_runtime.errors import ConfigurationError

if TYPE_CHECKING:
    from fastapi import FastAPI

    from langchain_runtime.api.server._background import BackgroundServer
    from langchain_runtime.config import RuntimeConfig
    from langchain_runtime.cost.ledger import BudgetLedger
    from langchain_runtime.orchestration import Orchestrator

__all__ = ["DEFAULT_DB", "ServerLimits", "create_app", "parse_limits", "serve", "serve_in_thread"]

logger = logging.getLogger(__name__)

#: The SQLite file used when ``store`` is not given (``$LANGCHAIN_RUNTIME_DB`` overrides).
DEFAULT_DB = "langchain-runtime-runs.sqlite3"
_INSTALL = "pip install 'langchain-runtime[server]'"


def _require_server_deps() -> None:
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            f"the runtime's HTTP server needs FastAPI and uvicorn ({exc.name} is missing); "
            f"install them with: {_INSTALL}"
        ) from exc


def create_app(
    config: RuntimeConfig | None = None,
    *,
    store: RunStore | str | os.PathLike[str] | None = None,
    token: str | None = None,
    max_body_bytes: int = 1_000_000,
    max_concurrent_runs: int = 16,
    workflows: Mapping[str, Orchestrator] | None = None,
    checkpoint_interval: float = 1.0,
    sse_keepalive: float = 5.0,
    allowed_hosts: Sequence[str] | None = None,
    limits: ServerLimits | None = None,
    ledger: BudgetLedger | None = None,
    database: str | None = None,
    stale_after: float = 30.0,
    lease_ttl: float | None = None,
) -> FastAPI:
    """The sidecar as an ASGI application.

    Runs found unfinished in the store (a server died while they ran) are marked
    ``failed`` when the app is created: a run executes at most once.

    Args:
        config: Models, policies and workflows; requests can use only what it
            defines (and the built-in ``simulated`` model). Default: empty.
        store: A :class:`RunStore`, or the path of an SQLite file (default
            ``$LANGCHAIN_RUNTIME_DB`` or ``./langchain-runtime-runs.sqlite3``).
        token: Bearer token required on every route but ``/healthz``; default
            ``$LANGCHAIN_RUNTIME_TOKEN``; none means no authentication. An empty
            or blank token is refused (it would read as "no authentication").
        max_body_bytes: Larger request bodies are refused (413).
        max_concurrent_runs: More runs at once are refused (429).
        workflows: Prebuilt orchestrators (with any Python runnables) by name.
        checkpoint_interval: Seconds between saves of a live run's progress.
        sse_keepalive: Seconds of silence after which the event stream sends a
            keep-alive comment.
        allowed_hosts: ``Host`` names served (``"*"``: any; ``"*.example.com"``);
            default loopback names only (``localhost``, ``127.0.0.1``, ``::1``).
        limits: What one request may ask (:class:`ServerLimits`).
        ledger: The shared budget ledger runs with scopes reserve in (API keys'
            scopes, workflows' ``scopes:``) and the budget routes read; default the
            config's ``ledger:``.
        database: One URL for the run store and the ledger (instead of ``store``):
            ``postgresql://...`` (:class:`~langchain_runtime.store.postgres.PostgresRunStore`
            and :class:`~langchain_runtime.cost.ledger.PostgresLedger`: any number of
            replicas on one database share runs, events, aborts and budgets) or
            ``sqlite:///path`` (one server: the SQLite run store and ledger in one file).
            A ``ledger:`` in the config still names the ledger.
        stale_after: With a PostgreSQL ``database``: seconds without a heartbeat after
            which another replica's run counts as interrupted (replicas sweep every
            quarter of it).
        lease_ttl: Seconds a call's ledger reservation lives without a renewal (the
            ledger this opens: ``database``'s or the config's ``ledger:``); default
            300. Calls in flight renew theirs; a lease nobody renews (a process that
            died unnoticed) frees its hold after this long.

    Raises:
        ImportError: FastAPI or uvicorn is not installed.
        ConfigurationError: An empty token; a token together with the config's API
            keys; API keys with scopes but no ledger.
    """
    _require_server_deps()
    from langchain_runtime.cost.ledger import DEFAULT_LEASE_TTL

    _ttl(lease_ttl)  # a bad value is refused before anything is opened
    ttl = lease_ttl if lease_ttl is not None else DEFAULT_LEASE_TTL.total_seconds()
    shared = database is not None and database.lower().startswith(("postgresql:", "postgres:"))
    if shared and ttl < 2 * stale_after:
        # a dead replica's calls are charged when a sweep finds it (up to 1.25 x
        # stale_after after its last heartbeat); their leases must outlive that, or
        # their holds are handed out again before the charge lands
        raise ConfigurationError(
            f"lease_ttl ({ttl:g} s) must be at least twice stale_after ({stale_after:g} s), "
            "so that a dead replica's calls are charged before their leases expire: raise "
            f"--lease-ttl to {2 * stale_after:g} or more, or lower --stale-after"
        )
    if token is not None and not token.strip():
        raise ConfigurationError(
            "token: an empty token would turn authentication off; give a token, or none "
            f"(and unset {TOKEN_ENV}) to serve without one"
        )
    from langchain_runtime.api.server._app import build_app
    from langchain_runtime.api.server._manager import RunManager
    from langchain_runtime.config import load_config

    if config is None:
        config = load_config({})
    sweep_interval = max(stale_after / 4, 0.1)
    if database is not None:
        if store is not None:
            raise ConfigurationError("give a store or a database, not both")
        store, db_ledger = open_database(database, stale_after=stale_after, lease_ttl=lease_ttl)
        if ledger is None and config.ledger() is None:
            ledger = db_ledger
        elif db_ledger is not None:
            db_ledger.close()
    own_store = not isinstance(store, RunStore) or database is not None
    if store is None:
        store = os.environ.get("LANGCHAIN_RUNTIME_DB") or DEFAULT_DB
    if not isinstance(store, RunStore):
        store = SqliteRunStore(
            Path(store) if str(store) != ":memory:" else ":memory:", exclusive=True
        )
    keys = None
    if config.api_keys:
        from langchain_runtime.api.server._keys import KeyRing

        if token is not None:
            raise ConfigurationError(
                f"{config.source}: the config has API keys (server.api_keys) and a token was "
                "given too: use one (the API keys identify each client; the token is for a "
                "single user)"
            )
        keys = KeyRing.from_specs(config.api_keys)
    elif token is None:
        token = os.environ.get(TOKEN_ENV) or None
    if ledger is None:
        ledger = config.ledger(**_ttl(lease_ttl))
    if keys is not None and keys.scopes() and ledger is None:
        raise ConfigurationError(
            f"{config.source}: API keys carry budget scopes ({', '.join(keys.scopes()[:5])}) "
            "but there is no ledger to keep them in: set `ledger:` in the config (or serve "
            "--database)"
        )
    manager = RunManager(
        config,
        store,
        workflows=workflows,
        max_concurrent_runs=max_concurrent_runs,
        checkpoint_interval=checkpoint_interval,
        own_store=own_store,
        ledger=ledger,
        sweep_interval=sweep_interval,
    )
    return build_app(
        manager,
        token=token or None,
        keys=keys,
        max_body_bytes=max_body_bytes,
        sse_keepalive=sse_keepalive,
        allowed_hosts=allowed_hosts,
        limits=limits,
    )


def _ttl(lease_ttl: float | None) -> dict[str, Any]:
    """The ledger constructor's ``lease_ttl`` option for ``lease_ttl`` seconds (if any)."""
    if lease_ttl is None:
        return {}
    if isinstance(lease_ttl, bool) or not lease_ttl > 0:
        raise ConfigurationError(f"lease_ttl must be a number of seconds > 0, got {lease_ttl!r}")
    return {"lease_ttl": timedelta(seconds=lease_ttl)}


def open_database(
    url: str, *, stale_after: float = 30.0, lease_ttl: float | None = None
) -> tuple[RunStore, BudgetLedger]:
    """The run store and the ledger a ``--database`` URL names.

    Raises:
        ConfigurationError: Not a ``postgresql://`` or ``sqlite:///`` URL.
        ImportError: ``postgresql://`` without the ``postgres`` extra.
    """
    scheme = url.partition("://")[0].lower()
    if scheme in ("postgresql", "postgres"):
        from langchain_runtime.cost.ledger import PostgresLedger
        from langchain_runtime.store.postgres import (  # type: ignore[import-not-found,unused-ignore]
            PostgresRunStore,
        )

        pg_store: RunStore = PostgresRunStore(url, stale_after=stale_after)
        try:
            return pg_store, PostgresLedger(url, **_ttl(lease_ttl))
        except BaseException:
            pg_store.close()
            raise
    if scheme == "sqlite" and url.startswith("sqlite:///") and len(url) > len("sqlite:///"):
        from langchain_runtime.cost.ledger import SQLiteLedger

        path = url[len("sqlite:///") :]
        sqlite_store = SqliteRunStore(Path(path), exclusive=True)  # its tables first
        try:
            return sqlite_store, SQLiteLedger(path, **_ttl(lease_ttl))
        except BaseException:
            sqlite_store.close()
            raise
    raise ConfigurationError(
        f"database: expected postgresql://user@host/db or sqlite:///path.db, got "
        f"{url.split('@')[-1]!r}"
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _hosts_for(host: str, allowed_hosts: Sequence[str] | None) -> Sequence[str] | None:
    """The hosts served when binding ``host``: loopback, plus a named address bound."""
    if allowed_hosts is not None or _is_loopback(host) or host in ("0.0.0.0", "::", ""):
        return allowed_hosts
    return (*LOOPBACK_HOSTS, host)


def _uvicorn_config(app: FastAPI, limits: ServerLimits | None, **kwargs: Any) -> Any:
    """A ``uvicorn.Config`` with the header-time and connection bounds of ``limits``."""
    import uvicorn

    from langchain_runtime.api.server._protocol import connection_budget, guarded_protocol

    limits = limits or getattr(app.state, "limits", None) or ServerLimits()
    protocol = guarded_protocol(limits.header_timeout, limits.max_connections)
    _, backlog = connection_budget(limits.max_connections)
    return uvicorn.Config(app, http=protocol, ws="none", backlog=backlog, **kwargs)


def serve(
    host: str = "127.0.0.1", port: int = 8000, *, log_level: str = "info", **create_app_kwargs: Any
) -> None:
    """Serve the sidecar with uvicorn until interrupted (blocking).

    Binds the loopback address by default; binding another address without a
    token logs a warning, as anyone who can reach it could then run (and pay for)
    model calls. Binding a named address serves that host name too; behind a proxy
    or on ``0.0.0.0``, name the hosts with ``allowed_hosts``.

    Example:
        >>> serve(port=8000, store="runs.sqlite3", token="s3cret")  # doctest: +SKIP
    """
    _require_server_deps()
    import uvicorn

    create_app_kwargs["allowed_hosts"] = _hosts_for(host, create_app_kwargs.get("allowed_hosts"))
    if host in ("0.0.0.0", "::", "") and create_app_kwargs["allowed_hosts"] is None:
        logger.warning(
            "serving on %s, but only loopback Host names are answered (DNS-rebinding guard); "
            "name the hosts clients use with allowed_hosts (serve --allowed-hosts NAME)",
            host or "every interface",
        )
    app = create_app(**create_app_kwargs)
    keyed = getattr(app.state, "keys", None) is not None
    if (
        not _is_loopback(host)
        and not keyed
        and not (create_app_kwargs.get("token") or os.environ.get(TOKEN_ENV))
    ):
        logger.warning(
            "serving on %s without a token: anyone who can reach it can start runs; set "
            "token= or %s",
            host,
            TOKEN_ENV,
        )
    limits = create_app_kwargs.get("limits")
    server = uvicorn.Server(_uvicorn_config(app, limits, host=host, port=port, log_level=log_level))
    # uvicorn re-raises the Ctrl-C it shut down on: that is a clean stop
    with contextlib.suppress(KeyboardInterrupt):
        server.run()


def serve_in_thread(
    app: FastAPI | None = None, *, host: str = "127.0.0.1", port: int = 0, **create_app_kwargs: Any
) -> BackgroundServer:
    """Start uvicorn in a daemon thread (notebooks, tests); see :class:`BackgroundServer`.

    Example:
        >>> with serve_in_thread(store=":memory:") as server:  # doctest: +SKIP
        ...     RuntimeClient(server.url).health()["status"]
        'ok'
    """
    _require_server_deps()
    from langchain_runtime.api.server._background import BackgroundServer

    limits = create_app_kwargs.get("limits")
    app = app or create_app(**create_app_kwargs)
    return BackgroundServer(app, host=host, port=port, limits=limits).start()
