"""Token counting, prices, usage tracking and hard budgets for LangChain model calls.

- :class:`TokenEstimator` counts tokens of text, chat messages and tool schemas.
- :class:`ModelCatalog` holds model prices (a bundled table, plus your overrides).
- :class:`CostCalculator` prices a :class:`~langchain_runtime.domain.Usage`.
- :class:`UsageTracker` totals usage per run, task and model, once per call.
- :class:`BudgetEnforcer` reserves before a call and settles after it.
- :class:`BudgetCallbackHandler` does that for every call it is attached to.
- :func:`with_budget` puts one budget over any Runnable (an agent, a graph, a chain);
  over a chat model it clamps each call's output limit to what is left.
- :func:`estimate_run` bounds a run's tokens and cost before it runs; it is what
  ``RunPolicy(admission="worst_case")`` admits runs by (:class:`AdmissionError`).

``langchain_runtime.BudgetMiddleware`` (in :mod:`langchain_runtime.agents`) does the
clamping inside ``create_agent`` agents.
"""

from langchain_runtime.cost.budget import BudgetEnforcer, Reservation
from langchain_runtime.cost.catalog import LongContextPricing, ModelCatalog, ModelInfo
from langchain_runtime.cost.estimate import AdmissionError, RunEstimate, estimate_run
from langchain_runtime.cost.handler import BudgetCallbackHandler
from langchain_runtime.cost.pricing import CostCalculator
from langchain_runtime.cost.tokens import TokenEstimator, encoding_name_for_model
from langchain_runtime.cost.tracking import CallRecord, UsageTotals, UsageTracker
from langchain_runtime.cost.wrap import BudgetedRunnable, with_budget

__all__ = [
    "AdmissionError",
    "BudgetCallbackHandler",
    "BudgetEnforcer",
    "BudgetedRunnable",
    "CallRecord",
    "CostCalculator",
    "LongContextPricing",
    "ModelCatalog",
    "ModelInfo",
    "Reservation",
    "RunEstimate",
    "TokenEstimator",
    "UsageTotals",
    "UsageTracker",
    "encoding_name_for_model",
    "estimate_run",
    "with_budget",
]
