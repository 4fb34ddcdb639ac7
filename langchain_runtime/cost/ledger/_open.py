"""Open a ledger from a URL, as the CLI and the configuration name it."""

from __future__ import annotations

from typing import Any

from langchain_runtime.cost.ledger._base import BudgetLedger
from langchain_runtime.errors import ConfigurationError

__all__ = ["open_ledger"]


def open_ledger(url: str, **options: Any) -> BudgetLedger:
    """The ledger a URL names.

    ``memory://`` (this process only), ``sqlite:///relative.db`` or
    ``sqlite:////absolute/path.db``, ``postgresql://user@host/db`` (also
    ``postgres://``). ``options`` go to the ledger's constructor.

    >>> open_ledger("memory://")
    InMemoryLedger(scopes=0, leases=0)

    Raises:
        ConfigurationError: The URL names no ledger this package knows.
    """
    if not isinstance(url, str) or "://" not in url:
        raise ConfigurationError(
            f"a ledger URL looks like sqlite:///ledger.db or postgresql://host/db, got {url!r}"
        )
    scheme, _, rest = url.partition("://")
    scheme = scheme.lower()
    if scheme == "memory":
        from langchain_runtime.cost.ledger._memory import InMemoryLedger

        return InMemoryLedger(**options)
    if scheme == "sqlite":
        if not rest.startswith("/") or rest == "/":
            raise ConfigurationError(
                f"a SQLite ledger URL is sqlite:///relative/path.db or sqlite:////abs/path.db, "
                f"got {url!r}"
            )
        from langchain_runtime.cost.ledger._sqlite import SQLiteLedger

        return SQLiteLedger(rest[1:], **options)
    if scheme in ("postgresql", "postgres"):
        from langchain_runtime.cost.ledger._postgres import PostgresLedger

        return PostgresLedger(url, **options)
    raise ConfigurationError(
        f"unknown ledger URL scheme {scheme!r} in {url!r}: use memory://, sqlite:/// or "
        "postgresql://"
    )
