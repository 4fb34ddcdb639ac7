"""``budgets``: set, show and list the shared budgets of a ledger (SQLite or PostgreSQL).

The ledger is named by a URL (``--ledger sqlite:///budgets.db`` or
``--ledger postgresql://user@host/db``, or ``$LANGCHAIN_RUNTIME_LEDGER``). Like every
command, these raise; the root group turns errors into an exit code and one line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from langchain_runtime.cli.errors import EXIT_FAILED, CliError

if TYPE_CHECKING:
    from langchain_runtime.cost.ledger import BudgetLedger, ScopeStatus, Window

__all__ = ["budgets_app", "parse_window", "status_json"]

_LEDGER_ENV = "LANGCHAIN_RUNTIME_LEDGER"
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}

budgets_app = typer.Typer(
    help="Shared budgets in a ledger (SQLite file or PostgreSQL): set, show, list.",
    no_args_is_help=True,
)

LedgerUrl = Annotated[
    str,
    typer.Option(
        "--ledger",
        envvar=_LEDGER_ENV,
        metavar="URL",
        help="The ledger: sqlite:///path.db or postgresql://user@host/db.",
    ),
]
Scope = Annotated[str, typer.Argument(help="A scope, e.g. team:research.", metavar="SCOPE")]
Json = Annotated[bool, typer.Option("--json", help="Print JSON for scripts, and nothing else.")]


def _remember_debug(ctx: typer.Context, value: bool) -> bool:
    if value:  # read by the root group's error boundary (cli/app.py)
        ctx.meta["langchain_runtime.debug"] = True
    return value


Debug = Annotated[
    bool,
    typer.Option("--debug", help="On an error, show its traceback too.", callback=_remember_debug),
]


def parse_window(text: str | None) -> Window:
    """``hour``/``day``/``week``/``month``, ``none``, or a length like ``90m``, ``12h``, ``7d``."""
    if text is None or text.lower() == "none":
        return None
    lowered = text.lower()
    if lowered in ("hour", "day", "week", "month"):
        return lowered  # type: ignore[return-value]
    match = re.fullmatch(r"(\d+)([smhdw])", lowered)
    if match is None or int(match.group(1)) == 0:
        raise CliError(
            f"--window must be hour, day, week, month, none or a length such as 90m, 12h or "
            f"7d, not {text!r}"
        )
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def _amount(text: str | None) -> Decimal | None:
    if text is None:
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise CliError(f"--max-cost must be an amount such as 25 or 0.50, not {text!r}") from None
    if not value.is_finite() or value < 0:
        raise CliError(f"--max-cost must be an amount >= 0, not {text!r}")
    return value


@contextmanager
def _ledger(url: str) -> Iterator[BudgetLedger]:
    from langchain_runtime.cost.ledger import open_ledger

    if not url:
        raise CliError(f"name the ledger with --ledger URL (or ${_LEDGER_ENV})")
    ledger = open_ledger(url)
    try:
        yield ledger
    finally:
        ledger.close()


def _window_text(window: Window) -> str:
    if window is None:
        return "none"
    if isinstance(window, timedelta):
        return f"{int(window.total_seconds())}s"
    return window


def _money(value: Decimal | None) -> str:
    return "—" if value is None else f"${value:,.6f}"


def _tokens(value: int | None) -> str:
    return "—" if value is None else f"{value:,}"


def status_json(status: ScopeStatus) -> dict[str, Any]:
    """A scope's status as JSON (money as decimal strings, exact)."""

    def money(value: Decimal | None) -> str | None:
        return None if value is None else str(value)

    return {
        "scope": status.scope,
        "max_cost": money(status.max_cost),
        "max_tokens": status.max_tokens,
        "window": _window_text(status.window),
        "window_start": None if status.window_start is None else status.window_start.isoformat(),
        "spent": money(status.spent),
        "spent_tokens": status.spent_tokens,
        "reserved": money(status.reserved),
        "reserved_tokens": status.reserved_tokens,
        "remaining": money(status.remaining),
        "remaining_tokens": status.remaining_tokens,
    }


def _print(statuses: list[ScopeStatus], title: str, as_json: bool, many: bool) -> None:
    if as_json:
        from langchain_runtime.cli.render import print_json

        data = [status_json(s) for s in statuses]
        print_json(data if many else data[0])
        return
    from langchain_runtime.cli._fit import Column, print_fitted

    rows = []
    for s in statuses:
        since = "—" if s.window_start is None else s.window_start.strftime("%Y-%m-%d %H:%M")
        limit = " / ".join(
            part
            for part in (
                None if s.max_cost is None else _money(s.max_cost),
                None if s.max_tokens is None else f"{s.max_tokens:,} tok",
            )
            if part
        )
        cells = [
            (s.spent, s.spent_tokens),
            (s.reserved, s.reserved_tokens),
            (s.remaining, s.remaining_tokens),
        ]
        rows.append(
            [
                escape(s.scope),
                _window_text(s.window),
                since,
                limit or "no limit",
                *(f"{_money(cost)} · {_tokens(tokens)} tok" for cost, tokens in cells),
            ]
        )
    names = ("scope", "window", "since (UTC)", "limit", "spent", "reserved", "remaining")
    columns = [Column(n, "left" if n in ("scope", "window") else "right") for n in names]
    print_fitted(Console(highlight=False), title=escape(title), columns=columns, rows=rows)


def _unknown(status: ScopeStatus) -> bool:
    """True for a scope with no limit and nothing spent or held: most likely a typo."""
    return (
        status.max_cost is None
        and status.max_tokens is None
        and not status.spent
        and not status.spent_tokens
        and not status.reserved
        and not status.reserved_tokens
    )


@budgets_app.command("set")
def set_budget(
    scope: Scope,
    ledger: LedgerUrl = "",
    max_cost: Annotated[
        str | None, typer.Option("--max-cost", metavar="AMOUNT", help="Cost limit (USD).")
    ] = None,
    max_tokens: Annotated[
        int | None, typer.Option("--max-tokens", min=0, help="Token limit.")
    ] = None,
    window: Annotated[
        str | None,
        typer.Option(
            "--window", metavar="WINDOW", help="hour, day, week, month (UTC), or 90m/12h/7d."
        ),
    ] = None,
    json: Json = False,
    debug: Debug = False,
) -> None:
    """Set a scope's limits (replacing the old ones; spend so far is kept)."""
    cost = _amount(max_cost)
    parsed = parse_window(window)
    with _ledger(ledger) as opened:
        opened.set_limit(scope, max_cost=cost, max_tokens=max_tokens, window=parsed)
        _print([opened.status(scope)], f"Budget {scope} set", json, many=False)


@budgets_app.command("show")
def show_budget(
    scope: Scope, ledger: LedgerUrl = "", json: Json = False, debug: Debug = False
) -> None:
    """A scope's limits, and what is spent, reserved and left in its current window.

    Exit status: 0 shown; 1 the ledger knows nothing of the scope (no limit, no spend:
    a misspelled name?); 2 bad usage.
    """
    with _ledger(ledger) as opened:
        status = opened.status(scope)
        if _unknown(status):
            from langchain_runtime.config._errors import did_you_mean

            known = opened.list_scopes()
            close = did_you_mean(scope, known)
            hint = f"; did you mean {close!r}?" if close else ""
            listed = f" (known: {', '.join(known)})" if known and not close else ""
            raise CliError(
                f"no limits set for {scope!r} and nothing spent in it{hint}{listed}; "
                f"set one with: langchain-runtime budgets set {scope} --max-cost AMOUNT",
                EXIT_FAILED,
            )
        _print([status], f"Budget {scope}", json, many=False)


@budgets_app.command("list")
def list_budgets(ledger: LedgerUrl = "", json: Json = False, debug: Debug = False) -> None:
    """Every scope the ledger knows, with where it stands."""
    with _ledger(ledger) as opened:
        statuses = [opened.status(scope) for scope in opened.list_scopes()]
        _print(statuses, f"Budgets ({len(statuses)} scopes)", json, many=True)
