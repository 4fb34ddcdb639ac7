"""A LangChain callback handler that enforces a budget on every model call it sees."""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler

from langchain_runtime.cost._call_state import CallState, corrected_usage, request_cache_ttls
from langchain_runtime.cost._limits import (
    declared_limit,
    explained_refusal,
    limit_in,
    output_reservation,
    output_tokens,
    stream_stopped,
    token_text,
)
from langchain_runtime.cost._quiet import install_quiet_refusals
from langchain_runtime.cost.budget import BudgetEnforcer, ledger_gate
from langchain_runtime.cost.catalog import ModelCatalog
from langchain_runtime.cost.tokens import TokenEstimator
from langchain_runtime.cost.tracking import UsageTotals, UsageTracker
from langchain_runtime.cost.usage import usage_from_result
from langchain_runtime.domain import Budget, Cost, Usage
from langchain_runtime.errors import BudgetExceededError, LedgerUnavailableError
from langchain_runtime.observability import _budget_events as budget_events

if TYPE_CHECKING:
    from langchain_core.messages import BaseMessage
    from langchain_core.outputs import ChatGenerationChunk, GenerationChunk, LLMResult

    from langchain_runtime.cost.ledger import BudgetLedger

__all__ = [
    "MODEL_METADATA_KEY",
    "SCOPE_METADATA_KEY",
    "TASK_METADATA_KEY",
    "BudgetCallbackHandler",
    "install_quiet_refusals",
]

logger = logging.getLogger(__name__)

#: Config metadata naming the task a call belongs to (set by the orchestrator).
TASK_METADATA_KEY = "lcr_task_id"
#: Config metadata naming the model to price a call whose model cannot be discovered.
MODEL_METADATA_KEY = "lcr_model"
#: Config metadata set by ``with_budget`` to find calls left open by one invocation.
SCOPE_METADATA_KEY = "lcr_budget_scope"

_MODEL_PARAMS = ("model", "model_name", "model_id", "deployment_name", "azure_deployment")


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


class BudgetCallbackHandler(BaseCallbackHandler):
    """Enforces a budget on every LLM and chat-model call it is attached to.

    Before a call (``on_chat_model_start``/``on_llm_start``) it counts the real input
    tokens and reserves their cost plus the call's output limit: its ``max_tokens``
    (``max_completion_tokens``, ``max_output_tokens``...) when it has one, else the
    budget's ``expected_output_tokens`` if that was set explicitly, else the model's
    maximum output (catalog, else model profile), else ``expected_output_tokens``. A
    call that does not fit is refused with
    :class:`~langchain_runtime.errors.BudgetExceededError` before anything is sent
    (and langchain-core's duplicate warning about it is filtered out). A stream that
    produces more than its reservation is stopped there (see
    :meth:`on_llm_new_token`). After the call (``on_llm_end``) the reservation is
    settled at the reported usage, else at an estimate (``Usage.estimated``). A
    failed call is charged what was reported, else its input estimate (plus what it
    streamed).

    The model is discovered from the invocation parameters (``model``,
    ``model_name``), ``metadata["ls_model_name"]`` or the serialized model, else the
    ``lcr_model`` config metadata, else ``default_model``. Usage is attributed to the
    task named by the ``lcr_task_id`` config metadata.

    The handler is synchronous with ``raise_error = True`` and ``run_inline = True``,
    which is what lets it stop a call on sync and async paths alike; it is safe to
    share between concurrent calls. (On async paths, langchain-core runs inline
    handlers first: when this one refuses a call, the start event of any non-inline
    handler, such as ``astream_events``' own, is never awaited and Python warns
    "coroutine 'ahandle_event' was never awaited".)

    Args:
        budget: The limits (none by default: the handler then only tracks usage).
        enforcer: An existing enforcer to share (instead of ``budget``/``catalog``).
        catalog: Prices (the bundled table by default).
        estimator: Token counter (a default :class:`TokenEstimator`).
        default_model: Model name for calls whose model cannot be discovered.
        per_task: Per-task limits, as for :class:`BudgetEnforcer`.
        ledger: A shared :class:`~langchain_runtime.cost.ledger.BudgetLedger`: every
            call also reserves in its ``scopes``, all or nothing with ``budget``.
        scopes: The ledger scopes (``"team:research"``...); required with ``ledger``.

    Raises:
        ConfigurationError: ``scopes`` without a ``ledger``, or the reverse.

    Example:
        >>> from langchain_core.language_models import FakeListChatModel
        >>> from langchain_runtime.domain import Budget
        >>> handler = BudgetCallbackHandler(Budget(max_tokens=20_000), default_model="simulated")
        >>> FakeListChatModel(responses=["hi"]).invoke("hello", config={"callbacks": [handler]})
        AIMessage(content='hi', ...)
        >>> handler.usage.estimated, handler.remaining_tokens > 0
        (True, True)
    """

    raise_error = True
    run_inline = True

    def __init__(
        self,
        budget: Budget | None = None,
        *,
        enforcer: BudgetEnforcer | None = None,
        catalog: ModelCatalog | None = None,
        estimator: TokenEstimator | None = None,
        default_model: str | None = None,
        per_task: Budget | Mapping[str, Budget] | None = None,
        ledger: BudgetLedger | None = None,
        scopes: Sequence[str] = (),
    ) -> None:
        if enforcer is not None and (
            budget is not None or per_task is not None or ledger is not None or scopes
        ):
            raise ValueError("pass either an enforcer or a budget/per_task/ledger, not both")
        self.enforcer = enforcer or BudgetEnforcer(
            budget,
            catalog,
            per_task=per_task,
            gate=ledger_gate(ledger, scopes, "BudgetCallbackHandler"),
        )
        self.estimator = estimator or TokenEstimator()
        self.default_model = default_model
        self._lock = threading.Lock()
        self._calls: dict[UUID, CallState] = {}
        self._scopes: dict[str, set[UUID]] = {}
        install_quiet_refusals()

    def __repr__(self) -> str:
        return f"BudgetCallbackHandler({self.budget!r}, spent={self.spent})"

    # Only model events matter; skipping the rest keeps the overhead down.
    @property
    def ignore_chain(self) -> bool:
        return True

    @property
    def ignore_agent(self) -> bool:
        return True

    @property
    def ignore_retriever(self) -> bool:
        return True

    @property
    def ignore_retry(self) -> bool:
        return True

    @property
    def ignore_custom_event(self) -> bool:
        return True

    # -- before the call -------------------------------------------------------------

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Reserve budget for a chat-model call, or refuse it."""
        params: Mapping[str, Any] = kwargs.get("invocation_params") or {}
        meta = metadata or {}
        model = self._model_for(serialized, params, meta)
        tools = params.get("tools") or params.get("functions")
        flat = [m for batch in messages for m in batch]
        try:
            tokens = self.estimator.count_messages(
                flat, model, tools if isinstance(tools, Sequence) else None
            )
        except Exception:  # never block a call because a message could not be counted
            logger.exception("could not count input tokens; using a character estimate")
            tokens = math.ceil(len(repr(flat)) / self.estimator.chars_per_token)
        call = self._begin(run_id, model, meta, params, tokens)
        call.cache_ttls = request_cache_ttls(flat, params)
        call.streamed = bool(params.get("stream"))

    def on_llm_start(
        self,
        serialized: dict[str, Any],
        prompts: list[str],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Reserve budget for a text-completion call, or refuse it."""
        params: Mapping[str, Any] = kwargs.get("invocation_params") or {}
        meta = metadata or {}
        model = self._model_for(serialized, params, meta)
        tokens = sum(self.estimator.count_text(p, model) for p in prompts)
        self._begin(run_id, model, meta, params, tokens)

    def _model_for(
        self,
        serialized: Mapping[str, Any] | None,
        params: Mapping[str, Any],
        metadata: Mapping[str, Any],
    ) -> str | None:
        for key in _MODEL_PARAMS:
            if name := _str(params.get(key)):
                return name
        if name := _str(metadata.get("ls_model_name")):
            return name
        serialized_kwargs = (serialized or {}).get("kwargs")
        if isinstance(serialized_kwargs, Mapping):
            for key in _MODEL_PARAMS:
                if name := _str(serialized_kwargs.get(key)):
                    return name
        return _str(metadata.get(MODEL_METADATA_KEY)) or self.default_model

    def _begin(
        self,
        run_id: UUID,
        model: str | None,
        metadata: Mapping[str, Any],
        params: Mapping[str, Any],
        input_tokens: int,
    ) -> CallState:
        task_id = _str(metadata.get(TASK_METADATA_KEY))
        planned = self.enforcer.reservation(run_id)
        currency = self.enforcer.calculator.catalog.currency
        if planned is not None:
            # with_budget over a chat model reserved (and clamped) this call already
            max_output, soft = planned.output_tokens, False
            budget_events.reserved(run_id, planned, currency)
        else:
            limit = limit_in(params) or declared_limit(metadata)
            provider = _str(metadata.get("ls_provider"))
            max_output, source = output_reservation(limit, model, self.enforcer, provider)
            soft = source == "expected"
            held = self.estimator.reservation_tokens(input_tokens, model)
            try:
                reservation = self.enforcer.reserve(run_id, model, held, max_output, task_id)
            except BudgetExceededError as exc:
                # LangChain sends no end or error event for a call refused here.
                self.enforcer.release(run_id)
                explain = source != "call" and not isinstance(exc, LedgerUnavailableError)
                refusal = explained_refusal(exc, max_output, source) if explain else exc
                budget_events.refused(
                    run_id, refusal, model=model, task_id=task_id, currency=currency
                )
                if refusal is exc:
                    raise
                raise refusal from None
            except BaseException:
                self.enforcer.release(run_id)
                raise
            budget_events.reserved(run_id, reservation, currency)
        scope = _str(metadata.get(SCOPE_METADATA_KEY))
        call = CallState(model, task_id, input_tokens, scope, max_output, soft)
        with self._lock:
            self._calls[run_id] = call
            if scope is not None:
                self._scopes.setdefault(scope, set()).add(run_id)
        return call

    # -- while it streams ------------------------------------------------------------

    def on_llm_new_token(
        self,
        token: str | list[str | dict[str, Any]],
        *,
        chunk: GenerationChunk | ChatGenerationChunk | None = None,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Stop a stream whose output passes what its call reserved.

        A call reserved at ``expected_output_tokens`` (the model was told no limit and
        may answer longer) stops when its counted tokens reach the reservation. A
        call whose limit was sent, or reserved at the model's maximum, stops only on
        proof that it passed it: more streamed pieces than reserved tokens (each
        piece holds at least one), so a counting difference never cuts a good answer.
        """
        call = self._calls.get(run_id)
        if call is None:
            return
        call.streamed = True
        text = token_text(token)
        produced = self.estimator.count_text(text, call.model) if text else 0
        message = getattr(chunk, "message", None)
        for part in getattr(message, "tool_call_chunks", None) or ():
            args = f"{part.get('name') or ''}{part.get('args') or ''}"
            produced += self.estimator.count_text(args, call.model) if args else 0
        if produced:
            call.produced += produced
            call.pieces += 1
        limit = call.output_limit
        if (call.soft and call.produced >= limit) or call.pieces > limit:
            produced = max(call.produced, call.pieces)
            raise stream_stopped(call.model, produced, limit, self.enforcer, call.task_id)

    # -- after the call --------------------------------------------------------------

    def _pop(self, run_id: UUID) -> CallState | None:
        with self._lock:
            call = self._calls.pop(run_id, None)
            if call is not None and call.scope is not None:
                ids = self._scopes.get(call.scope)
                if ids is not None:
                    ids.discard(run_id)
            return call

    def on_llm_end(
        self,
        response: LLMResult,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> Any:
        """Settle the call at its reported usage (or an estimate)."""
        call = self._pop(run_id)
        model = call.model if call else self._model_for(None, response.llm_output or {}, {})
        usage = usage_from_result(response)
        if usage is None:
            usage = Usage(
                input_tokens=call.input_tokens if call else 0,
                output_tokens=self._count_output(response, model),
                estimated=True,
            )
        else:
            usage = corrected_usage(usage, call)
        task_id = call.task_id if call else None
        cost = self.enforcer.settle(run_id, usage, model=model, task_id=task_id)
        budget_events.settled(run_id, usage, cost, model=model, task_id=task_id)

    def on_llm_error(
        self,
        error: BaseException,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> Any:
        """Settle a failed call at what was reported, else at its input estimate."""
        call = self._pop(run_id)
        response = kwargs.get("response")
        usage = usage_from_result(response) if response is not None else None
        if usage is None:
            if call is None:
                return
            # a stream cut short: what was already produced was billed too
            output = self._count_output(response, call.model) if response is not None else 0
            output = max(output, call.produced, call.pieces)
            usage = Usage(input_tokens=call.input_tokens, output_tokens=output, estimated=True)
        else:
            usage = corrected_usage(usage, call)
        model = call.model if call else None
        task_id = call.task_id if call else None
        cost = self.enforcer.settle(run_id, usage, model=model, task_id=task_id)
        budget_events.settled(run_id, usage, cost, model=model, task_id=task_id)

    def _count_output(self, response: LLMResult, model: str | None) -> int:
        # the first candidate of each prompt: the others are alternatives to it
        firsts = [generations[0] for generations in response.generations if generations]
        return sum(output_tokens(self.estimator, g.text, g, model) for g in firsts)

    def release_pending(self, scope: str | None = None) -> int:
        """Drop reservations of calls that started but never ended; returns how many.

        Such calls were stopped before sending by someone else (another handler raising
        in ``on_chat_model_start``). With ``scope``, only calls started under that
        ``with_budget`` invocation are dropped.
        """
        with self._lock:
            if scope is None:
                ids = list(self._calls)
                self._scopes.clear()
            else:
                ids = list(self._scopes.pop(scope, ()))
            for rid in ids:
                self._calls.pop(rid, None)
        for rid in ids:
            self.enforcer.release(rid)
        return len(ids)

    # -- where we stand --------------------------------------------------------------

    @property
    def budget(self) -> Budget:
        """The limits enforced."""
        return self.enforcer.budget

    @property
    def tracker(self) -> UsageTracker:
        """Settled usage, per call, task and model."""
        return self.enforcer.tracker

    @property
    def usage(self) -> Usage:
        """Usage of settled calls."""
        return self.enforcer.usage

    @property
    def spent(self) -> Cost:
        """Cost of settled calls."""
        return self.enforcer.spent

    @property
    def reserved(self) -> Cost:
        """Cost held by calls in flight."""
        return self.enforcer.reserved

    @property
    def remaining(self) -> Cost | None:
        """Money left for new calls, or None without a cost limit."""
        return self.enforcer.remaining

    @property
    def remaining_tokens(self) -> int | None:
        """Tokens left for new calls, or None without a token limit."""
        return self.enforcer.remaining_tokens

    def by_task(self) -> dict[str, UsageTotals]:
        """Usage, cost and calls per task id."""
        return self.tracker.by_task()

    def by_model(self) -> dict[str, UsageTotals]:
        """Usage, cost and calls per model."""
        return self.tracker.by_model()

    def close(self) -> None:
        """Stop renewing the ledger leases of calls in flight (no-op without a ledger)."""
        self.enforcer.close()

    def reset(self) -> None:
        """Forget all spending and pending calls (the limits stay; the ledger is kept)."""
        with self._lock:
            self._calls.clear()
            self._scopes.clear()
        self.enforcer.reset()
