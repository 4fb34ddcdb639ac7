"""Budget refusals without langchain-core's duplicate warning in the log."""

from __future__ import annotations

import logging
import sys
import threading
import warnings

from langchain_runtime.errors import BudgetExceededError

__all__ = ["install_quiet_refusals"]

_QUIET_LOGGER = "langchain_core.callbacks.manager"
_quiet_lock = threading.Lock()
#: langchain-core's ``AsyncCallbackManager.on_chat_model_start`` creates every
#: handler's ``ahandle_event`` coroutine first, then awaits the inline ones: when an
#: inline handler raises (our refusal), the others are never awaited and Python warns
#: at their garbage collection. Only that exact message is silenced.
_UNAWAITED = r"coroutine 'ahandle_event' was never awaited"


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


def _has_unawaited_filter() -> bool:
    return any(
        action == "ignore"
        and category is RuntimeWarning
        and message is not None
        and getattr(message, "pattern", None) == _UNAWAITED
        for action, message, category, _module, _lineno in warnings.filters
    )


def install_quiet_refusals() -> None:
    """Stop langchain-core from logging budget refusals (once per process).

    Also ignores the one ``RuntimeWarning: coroutine 'ahandle_event' was never
    awaited`` that langchain-core leaves behind when a refusal interrupts an async
    start event (installed again only if the warning filters were reset since).
    """
    target = logging.getLogger(_QUIET_LOGGER)
    with _quiet_lock:
        if not any(isinstance(f, _QuietRefusals) for f in target.filters):
            target.addFilter(_QuietRefusals())
        if not _has_unawaited_filter():
            warnings.filterwarnings("ignore", message=_UNAWAITED, category=RuntimeWarning)
