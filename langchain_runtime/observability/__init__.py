"""Watching runs: progress, OpenTelemetry traces and metrics, logs, HTML views.

Nothing here imports an optional extra at import time: OpenTelemetry is imported
when an :class:`OpenTelemetryCallbackHandler` is made (``pip install
'langchain-runtime[otel]'``).
"""

from langchain_runtime.observability._budget_events import (
    BudgetEvent,
    add_budget_listener,
)
from langchain_runtime.observability._install import (
    installed_handler,
    instrument_langchain,
    uninstrument_langchain,
)
from langchain_runtime.observability.otel import OpenTelemetryCallbackHandler
from langchain_runtime.observability.progress import ProgressBar

__all__ = [
    "BudgetEvent",
    "OpenTelemetryCallbackHandler",
    "ProgressBar",
    "add_budget_listener",
    "installed_handler",
    "instrument_langchain",
    "uninstrument_langchain",
]
