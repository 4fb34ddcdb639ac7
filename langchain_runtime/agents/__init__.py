"""Budgets inside LangChain v1 agents (needs the ``langchain`` package).

- :class:`BudgetMiddleware` keeps every model call of a ``create_agent`` agent
  inside one hard budget, clamping each call's output limit to what is left.
"""

try:
    import langchain.agents.middleware  # noqa: F401  (checks the optional dependency)
except ImportError as exc:  # pragma: no cover - exercised without the extra installed
    raise ImportError(
        "langchain_runtime.agents needs the langchain package (create_agent): "
        "pip install 'langchain-runtime[agents]'"
    ) from exc

from langchain_runtime.agents.middleware import BudgetMiddleware

__all__ = ["BudgetMiddleware"]
