"""One tracing handler for every LangChain run in the process (``serve --otel``)."""

from __future__ import annotations

import threading
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler

from langchain_runtime.observability.otel import OpenTelemetryCallbackHandler

__all__ = ["installed_handler", "instrument_langchain", "uninstrument_langchain", "with_trace_id"]

_FORWARDED = (
    "on_chain_start", "on_chain_end", "on_chain_error",
    "on_chat_model_start", "on_llm_start", "on_llm_end", "on_llm_error",
    "on_tool_start", "on_tool_end", "on_tool_error",
)  # fmt: skip


class _Installed(BaseCallbackHandler):
    """Added to every callback manager once installed; forwards to the current handler.

    LangChain's configure hooks read a context variable whose *default* reaches every
    thread, so the default is this one slot and installing only changes its target.
    """

    raise_error = False
    run_inline = True

    def __init__(self) -> None:
        self.target: OpenTelemetryCallbackHandler | None = None

    def _off(self) -> bool:
        return self.target is None

    ignore_chain = property(_off)
    ignore_llm = property(_off)
    ignore_chat_model = property(_off)
    ignore_retriever = property(lambda self: True)
    ignore_agent = property(_off)
    ignore_retry = property(lambda self: True)
    ignore_custom_event = property(lambda self: True)


def _forward(name: str) -> Any:
    def method(self: _Installed, *args: Any, **kwargs: Any) -> None:
        target = self.target
        if target is not None:
            getattr(target, name)(*args, **kwargs)

    method.__name__ = name
    return method


for _name in _FORWARDED:
    setattr(_Installed, _name, _forward(_name))

_slot: _Installed | None = None
_slot_lock = threading.Lock()


def instrument_langchain(
    handler: OpenTelemetryCallbackHandler | None = None,
) -> OpenTelemetryCallbackHandler:
    """Trace every LangChain run in this process with ``handler`` (or a new one).

    Runs need no ``callbacks=`` then: the handler joins every callback manager
    LangChain configures, in every thread (this is what ``langchain-runtime serve
    --otel`` does). :func:`uninstrument_langchain` stops it.

    Example:
        >>> handler = instrument_langchain()
        >>> installed_handler() is handler
        True
        >>> uninstrument_langchain()
        >>> installed_handler() is None
        True
    """
    global _slot
    handler = handler or OpenTelemetryCallbackHandler()
    with _slot_lock:
        if _slot is None:
            from contextvars import ContextVar

            from langchain_core.tracers.context import register_configure_hook

            _slot = _Installed()
            var: ContextVar[_Installed | None] = ContextVar("lcr_otel_handler", default=_slot)
            register_configure_hook(var, inheritable=True)
        _slot.target = handler
    return handler


def uninstrument_langchain() -> None:
    """Stop tracing runs that did not ask for it (see :func:`instrument_langchain`)."""
    with _slot_lock:
        if _slot is not None:
            _slot.target = None


def installed_handler() -> OpenTelemetryCallbackHandler | None:
    """The handler :func:`instrument_langchain` installed, if any."""
    return _slot.target if _slot is not None else None


def with_trace_id(status: dict[str, Any]) -> dict[str, Any]:
    """A sidecar run status with its ``trace_id``, when an installed handler traced it."""
    handler = installed_handler()
    trace_id = handler.trace_id_for(status["run_id"]) if handler is not None else None
    return {**status, "trace_id": trace_id} if trace_id else status
