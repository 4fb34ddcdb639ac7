"""The ``langchain-runtime`` command: its commands, thin, and the one error boundary.

Each command parses its options and calls one function that does the work; none
of them catches errors. :class:`_Boundary`, the root command group, turns whatever
a command raises into an exit code and a one-line message (see
:mod:`langchain_runtime.cli.errors`).
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from typer.core import TyperGroup

from langchain_runtime._version import __version__
from langchain_runtime.cli import errors
from langchain_runtime.cli.budgets import budgets_app
from langchain_runtime.cli.keys import keys_app

__all__ = ["app"]

_DEBUG = "langchain_runtime.debug"
_URL_ENV = "LANGCHAIN_RUNTIME_URL"
_TOKEN_ENV = "LANGCHAIN_RUNTIME_TOKEN"
_DEFAULT_URL = "http://127.0.0.1:8000"


def _quiet_flags(command: Any, ctx: Any) -> Any:
    """Show on/off flags as ``--debug``, not ``--debug <bool>`` (typer labels their type)."""
    for param in [*command.params, command.get_help_option(ctx)]:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    return command


class _Group(TyperGroup):
    """A command group whose commands' help shows flags without a type."""

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        return _quiet_flags(command, ctx) if command is not None else None

    def format_help(self, ctx: Any, formatter: Any) -> None:
        _quiet_flags(self, ctx)
        super().format_help(ctx, formatter)


class _Boundary(_Group):
    """The root group: every command runs inside its ``invoke``, so errors meet here."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as exc:
            raise typer.Exit(errors.report(exc)) from None
        except Exception as exc:
            if errors.is_framework_exception(exc):  # usage errors, Exit: typer shows them
                raise
            raise typer.Exit(errors.report(exc, debug=bool(ctx.meta.get(_DEBUG)))) from None


def _remember_debug(ctx: typer.Context, value: bool) -> bool:
    if value:
        ctx.meta[_DEBUG] = True
    return value


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"langchain-runtime {__version__}")
        raise typer.Exit()


def _out() -> Console:
    return Console(highlight=False)


def _err() -> Console:
    return Console(stderr=True, highlight=False)


Debug = Annotated[
    bool,
    typer.Option("--debug", help="On an error, show its traceback too.", callback=_remember_debug),
]
Json = Annotated[bool, typer.Option("--json", help="Print JSON for scripts, and nothing else.")]
File = Annotated[Path, typer.Argument(help="A workflow file (YAML or JSON).", metavar="FILE")]
WorkflowName = Annotated[
    str | None,
    typer.Option("--workflow", "-w", help="The workflow to use, when the file has several."),
]
Inputs = Annotated[
    list[str] | None,
    typer.Option(
        "--input", "-i", metavar="KEY=VALUE", help="A run input value (repeatable); a string."
    ),
]
InputFile = Annotated[
    Path | None,
    typer.Option("--input-file", metavar="FILE", help="Run input as a JSON object."),
]
BudgetAmount = Annotated[
    str | None,
    typer.Option(
        "--max-cost",
        "--budget",
        metavar="AMOUNT",
        help="Cost limit for the run, e.g. 0.05 (USD); --budget is the same option.",
    ),
]
Url = Annotated[str, typer.Option("--url", envvar=_URL_ENV, help="The sidecar's base URL.")]
Token = Annotated[
    str | None,
    typer.Option("--token", envvar=_TOKEN_ENV, help="The sidecar's bearer token."),
]
StorePath = Annotated[
    str | None,
    typer.Option(
        "--store", metavar="PATH", help="A run store file (SQLite): keep runs there, to resume."
    ),
]
ReadStore = Annotated[
    str | None,
    typer.Option(
        "--store",
        metavar="PATH",
        help="Read a run store file (from `run --store` or `serve --store`) instead of a sidecar.",
    ),
]

app = typer.Typer(
    name="langchain-runtime",
    cls=_Boundary,
    help="Run graphs of LangChain tasks under hard token and cost budgets.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
runs_app = typer.Typer(
    cls=_Group,
    help="Runs on a sidecar server (list, status, wait, abort, events); `list` and `status` "
    "also read a store file (--store).",
    no_args_is_help=True,
)
app.add_typer(runs_app, name="runs")
app.add_typer(budgets_app, name="budgets")
app.add_typer(keys_app, name="keys")


@app.callback()
def _root(
    debug: Debug = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Show the version and exit.", callback=_show_version, is_eager=True
        ),
    ] = False,
) -> None:
    """Run graphs of LangChain tasks under hard token and cost budgets."""


@app.command()
def run(
    file: File,
    inputs: Inputs = None,
    input_file: InputFile = None,
    workflow: WorkflowName = None,
    budget: BudgetAmount = None,
    max_parallelism: Annotated[
        int | None, typer.Option("--max-parallelism", min=1, help="Most tasks at once.")
    ] = None,
    store: StorePath = None,
    json: Json = False,
    full: Annotated[
        bool, typer.Option("--full", help="Show each output whole (default: its first line).")
    ] = False,
    debug: Debug = False,
) -> None:
    """Run a workflow: live progress, then each task's state, tokens and cost, and outputs.

    With --store, each task is saved as it completes, and a run that does not complete
    (Ctrl-C included) can be resumed with `langchain-runtime resume RUN_ID --store PATH`.

    Exit status: 0 completed; 1 failed, over budget, timed out; 2 bad file or input;
    130 interrupted (Ctrl-C stops the run cleanly and shows what finished).
    """
    from langchain_runtime.cli.run import run_workflow

    run_workflow(
        file,
        inputs=inputs,
        input_file=input_file,
        workflow=workflow,
        budget=budget,
        max_parallelism=max_parallelism,
        as_json=json,
        out=_out(),
        err=_err(),
        store=store,
        full=full,
    )


@app.command()
def resume(
    run_id: Annotated[str, typer.Argument(help="The run's id (or a unique prefix).")],
    store: StorePath = None,
    url: Annotated[
        str | None,
        typer.Option("--url", envvar=_URL_ENV, help="Resume it on this sidecar instead."),
    ] = None,
    token: Token = None,
    max_cost: Annotated[
        str | None,
        typer.Option("--max-cost", metavar="AMOUNT", help="A new cost limit, e.g. 0.50 (USD)."),
    ] = None,
    max_tokens: Annotated[
        int | None, typer.Option("--max-tokens", min=0, help="A new token limit.")
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option("--file", metavar="FILE", help="The workflow file, if it has moved."),
    ] = None,
    json: Json = False,
    debug: Debug = False,
) -> None:
    """Resume a stored run: completed tasks are kept (and not paid again), the rest run.

    Exit status: 0 completed; 1 failed, over budget, or cannot be resumed; 2 no such
    run or bad usage; 130 interrupted (the run stays resumable).
    """
    from langchain_runtime.cli import durable

    if (store is None) == (url is None):
        raise errors.CliError("give exactly one of --store PATH or --url URL")
    if url is not None:
        durable.resume_remote(
            run_id,
            url=url,
            token=token,
            max_cost=max_cost,
            max_tokens=max_tokens,
            as_json=json,
            out=_out(),
        )
        return
    assert store is not None
    durable.resume_local(
        run_id,
        store_path=store,
        max_cost=max_cost,
        max_tokens=max_tokens,
        file=file,
        as_json=json,
        out=_out(),
        err=_err(),
    )


@app.command()
def validate(file: File, workflow: WorkflowName = None, debug: Debug = False) -> None:
    """Check a workflow file and its configuration without running anything.

    No API key is needed; a model whose key variable is not set gets a warning.
    """
    from langchain_runtime.cli.validate import missing_keys, print_summaries, validate
    from langchain_runtime.config import load_config

    print_summaries(_out(), file, validate(file, workflow))
    for warning in missing_keys(load_config(file)):
        _err().print(f"warning: {warning}", markup=False, highlight=False, soft_wrap=True)


@app.command()
def estimate(
    file: File,
    inputs: Inputs = None,
    input_file: InputFile = None,
    workflow: WorkflowName = None,
    budget: BudgetAmount = None,
    json: Json = False,
    debug: Debug = False,
) -> None:
    """Estimate a run's tokens and cost per task, as ranges, without calling any model.

    Exit status: 0 estimated; 2 bad file or input, or a cost budget is set and a
    task's model has no price (so the cost cannot be known: add it under `prices:`).
    """
    from langchain_runtime.cli.estimate import estimate_file, unpriced_hint
    from langchain_runtime.cli.estimate_view import estimate_json, print_estimate
    from langchain_runtime.cli.render import print_json

    result = estimate_file(
        file, inputs=inputs, input_file=input_file, workflow=workflow, budget=budget
    )
    if json:
        print_json(estimate_json(result))
    else:
        print_estimate(_out(), result)
    hint = unpriced_hint(result, file, workflow)
    if hint is not None:
        if result.budget is not None and result.budget.max_cost is not None:
            raise errors.CliError(f"the workflow has a cost budget, but {hint}")
        _err().print(f"warning: {hint}", markup=False, soft_wrap=True)


class LogFormat(str, Enum):
    """``serve --log-format``."""

    text = "text"
    json = "json"


@app.command()
def serve(
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port.")] = 8000,
    config: Annotated[
        Path | None,
        typer.Option("--config", metavar="FILE", help="Models, prices, policies, workflows."),
    ] = None,
    store: Annotated[
        str | None,
        typer.Option("--store", metavar="PATH", help="SQLite file for runs, or :memory:."),
    ] = None,
    database: Annotated[
        str | None,
        typer.Option("--database", metavar="URL", help="Runs and budgets in one database: "
                     "postgresql://... (replicas share it) or sqlite:///path."),
    ] = None,
    stale_after: Annotated[
        float,
        typer.Option("--stale-after", min=0.5, metavar="SECONDS", help="With --database "
                     "postgresql://: another replica's run is interrupted after this long "
                     "without a heartbeat."),
    ] = 30.0,
    lease_ttl: Annotated[
        float | None,
        typer.Option("--lease-ttl", min=1, metavar="SECONDS", help="Lifetime of a call's "
                     "ledger reservation without a renewal (default 300); calls in flight "
                     "renew theirs."),
    ] = None,
    token: Token = None,
    log_format: Annotated[
        LogFormat,
        typer.Option(
            "--log-format",
            help="Log lines as text, or as one JSON object each (run_id/task_id included).",
        ),
    ] = LogFormat.text,
    otel: Annotated[
        bool,
        typer.Option(
            "--otel",
            help="Trace every run and export traces and metrics over OTLP to "
            "$OTEL_EXPORTER_OTLP_ENDPOINT (needs opentelemetry-exporter-otlp).",
        ),
    ] = False,
    allowed_hosts: Annotated[
        list[str] | None,
        typer.Option("--allowed-hosts", metavar="HOST", help="Host names served besides "
                     "loopback (repeatable or comma-separated; '*' for any)."),
    ] = None,
    limit: Annotated[
        list[str] | None,
        typer.Option("--limit", metavar="NAME=VALUE", help="A request limit, e.g. "
                     "max_tasks=500 or body_timeout=10 (repeatable)."),
    ] = None,
    debug: Debug = False,
) -> None:  # fmt: skip
    """Start the sidecar HTTP server (needs the `server` extra).

    Runs are kept in ./langchain-runtime-runs.sqlite3 unless --store (or
    $LANGCHAIN_RUNTIME_DB) names another file.
    """
    from langchain_runtime.cli.remote import serve as start

    _check_port(host, port)
    if log_format is LogFormat.json:
        from langchain_runtime.observability._logging import configure_logging

        configure_logging("json")
    if otel:
        from langchain_runtime.observability._otlp import setup_otlp

        try:
            setup_otlp()
        except (ImportError, ValueError) as exc:
            raise errors.CliError(str(exc), errors.EXIT_USAGE) from exc
    if database is not None and store is not None:
        raise errors.CliError("give --store or --database, not both")
    extra: dict[str, Any] = {"database": database, "stale_after": stale_after} if database else {}
    if lease_ttl is not None:
        extra["lease_ttl"] = lease_ttl
    start(host=host, port=port, config=config, store=store, token=token,
          allowed_hosts=allowed_hosts, limits=limit, **extra)  # fmt: skip


def _check_port(host: str, port: int) -> None:
    """Refuse a port another process listens on, in one line, before the server starts.

    Bound the way uvicorn binds (``SO_REUSEADDR``), so a port in ``TIME_WAIT`` passes.
    """
    import errno
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise errors.CliError(
                    f"port {port} is in use; pick another with --port", errors.EXIT_USAGE
                ) from None
            raise errors.CliError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


@app.command()
def models(
    config: Annotated[
        Path | None,
        typer.Option("--config", metavar="FILE", help="Add its prices and show its registry."),
    ] = None,
    provider: Annotated[
        str | None, typer.Option("--provider", help="Only this provider's models.")
    ] = None,
    json: Json = False,
    debug: Debug = False,
) -> None:
    """The model catalog: prices per 1M tokens, context window, provider, role."""
    from langchain_runtime.cli.models import models_json, print_models
    from langchain_runtime.config import load_config
    from langchain_runtime.cost import ModelCatalog

    loaded = load_config(config) if config is not None else None
    catalog = loaded.catalog() if loaded is not None else ModelCatalog.default()
    if json:
        from langchain_runtime.cli.render import print_json

        print_json(models_json(catalog, loaded, provider=provider))
    else:
        print_models(_out(), catalog, loaded, provider=provider)


def _remote(url: str, token: str | None, json: bool) -> Any:
    from langchain_runtime.cli.remote import RemoteRuns

    return RemoteRuns(url, token, _out(), as_json=json)


RunId = Annotated[str, typer.Argument(help="The run's id (or a unique prefix).", metavar="RUN_ID")]


@runs_app.command("list")
def runs_list(
    url: Url = _DEFAULT_URL,
    token: Token = None,
    state: Annotated[str | None, typer.Option("--state", help="Only runs in this state.")] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Most runs shown.")] = None,
    store: ReadStore = None,
    json: Json = False,
    debug: Debug = False,
) -> None:
    """The sidecar's runs (or, with --store, a store file's), newest first."""
    if store is not None:
        from langchain_runtime.cli.durable import list_stored

        list_stored(store, state=state, limit=limit, as_json=json, out=_out())
        return
    _remote(url, token, json).list(state=state, limit=limit)


@runs_app.command()
def status(
    run_id: RunId, url: Url = _DEFAULT_URL, token: Token = None, store: ReadStore = None,
    json: Json = False, debug: Debug = False,
) -> None:  # fmt: skip
    """A run's state, and each task's state, tokens and cost (a sidecar's, or --store's)."""
    if store is not None:
        from langchain_runtime.cli.durable import status_stored

        status_stored(run_id, store_path=store, as_json=json, out=_out())
        return
    _remote(url, token, json).status(run_id)


@runs_app.command()
def wait(
    run_id: RunId,
    url: Url = _DEFAULT_URL,
    token: Token = None,
    timeout: Annotated[float, typer.Option("--timeout", min=0, help="Seconds to wait.")] = 60.0,
    store: ReadStore = None,
    json: Json = False,
    debug: Debug = False,
) -> None:
    """Wait for a run to end; exit 0 if it completed, 1 otherwise (a sidecar's, or --store's)."""
    if store is not None:
        from langchain_runtime.cli.durable import wait_stored

        wait_stored(run_id, store_path=store, timeout=timeout, as_json=json, out=_out())
        return
    _remote(url, token, json).wait(run_id, timeout)


@runs_app.command()
def abort(
    run_id: RunId, url: Url = _DEFAULT_URL, token: Token = None, json: Json = False,
    debug: Debug = False,
) -> None:  # fmt: skip
    """Ask a run to stop: calls in flight are cancelled, nothing new starts."""
    _remote(url, token, json).abort(run_id)


@runs_app.command()
def events(
    run_id: RunId,
    url: Url = _DEFAULT_URL,
    token: Token = None,
    store: ReadStore = None,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0, help="With --store: most seconds to follow.")
    ] = 3600.0,
    json: Json = False,
    debug: Debug = False,
) -> None:
    """A run's events as they happen, until it ends (JSON lines with --json)."""
    if store is not None:
        from langchain_runtime.cli.durable import events_stored

        events_stored(run_id, store_path=store, timeout=timeout, as_json=json, out=_out())
        return
    _remote(url, token, json).events(run_id)
