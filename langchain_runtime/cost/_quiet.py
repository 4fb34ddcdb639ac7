"""Budget refusals without langchain-core's duplicate warning in the log."""

from __future__ import annotations

import logging
import sys
import threading

from langchain_runtime.errors import BudgetExceededError

__all__ = ["install_quiet_refusals"]

_QUIET_LOGGER = "langchain_core.callbacks.manager"
_quiet_lock = threading.Lock()


class _QuietRefusals(logging.Filter):
    """Drops langchain-core's "Error in ...callback" record for a budget refusal.

    langchain-core logs every exception a callback raises, at WARNING, from inside
    its ``except`` block, even when it then re-raises it; the caller gets the
    ``BudgetExceededError`` anyway, so that record only repeats it. The exception
    being handled is read from ``sys.exc_info()``: records about any other
    exception pass.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = sys.exc_info()[1]
        return not (isinstance(exc, BudgetExceededError) and "callback" in str(record.msg))


def install_quiet_refusals() -> None:
    """Stop langchain-core from logging budget refusals (once per process)."""
    target = logging.getLogger(_QUIET_LOGGER)
    with _quiet_lock:
        if not any(isinstance(f, _QuietRefusals) for f in target.filters):
            target.addFilter(_QuietRefusals())
