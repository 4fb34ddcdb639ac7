"""What a request's API key decides about its run: the budget scopes it reserves in."""

from __future__ import annotations

from typing import TYPE_CHECKING

from langchain_runtime.errors import BudgetExceededError, ConfigurationError

if TYPE_CHECKING:
    from langchain_runtime.cost.ledger import BudgetLedger
    from langchain_runtime.orchestration import Orchestrator

__all__ = ["scoped"]


def scoped(
    orch: Orchestrator, key_scopes: tuple[str, ...], ledger: BudgetLedger | None
) -> Orchestrator:
    """``orch`` reserving in the key's scopes too, on the server's ledger.

    Raises:
        BudgetExceededError: A scope has no money or tokens left (402, naming it).
        LedgerUnavailableError: The ledger cannot answer (503).
    """
    policy = orch.policy
    own = tuple(getattr(policy, "scopes", ()) or ())
    scopes = tuple(dict.fromkeys((*own, *key_scopes)))
    if not scopes:
        return orch
    if ledger is None:
        raise ConfigurationError(
            f"scopes {', '.join(scopes)}: this server has no budget ledger (set "
            "`ledger:` in its config, or serve --database)"
        )
    if "scopes" not in type(policy).model_fields:  # pragma: no cover - old domain
        raise ConfigurationError("this build of the runtime has no shared-budget scopes")
    for scope in scopes:
        status = ledger.status(scope)
        money, tokens = status.remaining, status.remaining_tokens
        if (money is not None and money <= 0) or (tokens is not None and tokens <= 0):
            limit = status.max_cost if money is not None and money <= 0 else status.max_tokens
            raise BudgetExceededError(
                f"budget scope {scope!r} has nothing left in its current window "
                f"(spent {status.spent}, reserved {status.reserved}, limit {limit}); "
                "the run was not started",
                limit=limit,
                spent=status.spent,
            )
    scoped = policy.model_copy(update={"scopes": scopes})
    return orch.model_copy(update={"policy": scoped, "ledger": ledger})
