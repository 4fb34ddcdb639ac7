"""Checking the keyword arguments of the budget entry points.

``with_budget(m, max_cst=1)`` must not build an object without a limit, and
``max_cost="fifty cents"`` must say which argument is wrong instead of raising
``decimal.InvalidOperation``: every entry point builds its :class:`Budget` here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError

from langchain_runtime._fields import unknown_field_message
from langchain_runtime.domain import Budget
from langchain_runtime.errors import ConfigurationError

__all__ = ["budget_from_arguments", "refuse_unknown_arguments"]


def refuse_unknown_arguments(owner: str, unknown: Mapping[str, Any], known: Iterable[str]) -> None:
    """Raise a :class:`ConfigurationError` naming each unknown keyword and its closest match.

    Example:
        >>> refuse_unknown_arguments("with_budget", {"max_cst": 1}, ["max_cost", "max_tokens"])
        Traceback (most recent call last):
        ...
        langchain_runtime.errors.ConfigurationError: with_budget: max_cst: unknown field; did you mean 'max_cost'? (expected one of: max_cost, max_tokens)
    """  # noqa: E501
    if not unknown:
        return
    names = sorted(set(known))
    lines = [f"{owner}: {key}: {unknown_field_message(key, names)}" for key in sorted(unknown)]
    raise ConfigurationError("\n".join(lines))


def budget_from_arguments(owner: str, **fields: Any) -> Budget:
    """A :class:`Budget` from an entry point's keyword arguments (None ones are left out).

    A bad value is a :class:`ConfigurationError` (a ValueError) naming the argument
    and the value, such as ``with_budget: max_cost='fifty cents' is not valid: ...``.

    Example:
        >>> budget_from_arguments("with_budget", max_cost="0.5", max_tokens=None)
        Budget(max_cost=Decimal('0.5'), max_tokens=None, currency='USD', expected_output_tokens=1024)
        >>> budget_from_arguments("with_budget", max_cost="fifty cents")
        Traceback (most recent call last):
        ...
        langchain_runtime.errors.ConfigurationError: with_budget: max_cost='fifty cents' is not valid: Input should be a valid decimal
    """  # noqa: E501
    given = {k: v for k, v in fields.items() if v is not None}
    if isinstance(given.get("max_cost"), float):
        # 0.1 means ten cents, not 0.1000000000000000055511151231257827
        given["max_cost"] = str(given["max_cost"])
    try:
        return Budget.model_validate(given)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = str(err["loc"][0]) if err["loc"] else "budget"
            message = str(err["msg"]).removeprefix("Value error, ")
            lines.append(f"{owner}: {name}={given.get(name)!r} is not valid: {message}")
        raise ConfigurationError("\n".join(lines)) from None
