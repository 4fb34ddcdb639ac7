"""A LangChain callback handler that enforces a budget on every model call it sees."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler

from langchain_runtime.cost._arguments import refuse_unknown_arguments
from langchain_runtime.cost._call_state import (
    CallBook,
    CallState,
    corrected_usage,
    count_margin,
    held_usage,
    request_cache_ttls,
    sent_unanswered,
)
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
from langchain_runtime.cost.pricing import CacheWriteTTL
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
    "RESERVATION_METADATA_KEY",
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
#: Config metadata set by ``with_budget`` naming the reservation it made for the call.
RESERVATION_METADATA_KEY = "lcr_reservation"

_HANDLER_ARGS = (
    "budget", "enforcer", "catalog", "estimator", "default_model", "per_task", "ledger", "scopes",
)  # fmt: skip
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
        **unknown: Any,
    ) -> None:
        refuse_unknown_arguments("BudgetCallbackHandler", unknown, _HANDLER_ARGS)
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
        self._book = CallBook(self.enforcer)  # calls in flight, each under its own key
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
        ttls = request_cache_ttls(flat, params)
        cache_write: CacheWriteTTL | None = "1h" if "1h" in ttls else ("5m" if ttls else None)
        call = self._begin(run_id, model, meta, params, tokens, cache_write)
        call.cache_ttls = ttls
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
        cache_write: CacheWriteTTL | None = None,
    ) -> CallState:
        task_id = _str(metadata.get(TASK_METADATA_KEY))
        adopted = _str(metadata.get(RESERVATION_METADATA_KEY))
        planned = self.enforcer.reservation(adopted) if adopted is not None else None
        key = adopted if planned is not None and adopted is not None else self._book.new_key(run_id)
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
                reservation = self.enforcer.reserve(
                    key, model, held, max_output, task_id, cache_write=cache_write
                )
            except BudgetExceededError as exc:
                # LangChain sends no end or error event for a call refused here.
                self._book.forget(run_id, key)
                self.enforcer.release(key)
                explain = source != "call" and not isinstance(exc, LedgerUnavailableError)
                refusal = explained_refusal(exc, max_output, source) if explain else exc
                budget_events.refused(
                    run_id, refusal, model=model, task_id=task_id, currency=currency
                )
                if refusal is exc:
                    raise
                raise refusal from None
            except BaseException:
                self._book.forget(run_id, key)
                self.enforcer.release(key)
                raise
            budget_events.reserved(run_id, reservation, currency)
        scope = _str(metadata.get(SCOPE_METADATA_KEY))
        call = CallState(model, task_id, input_tokens, scope, max_output, soft)
        call.key, call.run_id = key, run_id
        call.margin = count_margin(self.estimator, model)
        self._book.add(call)
        return call

    def new_call_key(self, run_id: UUID) -> str:
        """A budget key for a new call of ``run_id`` (see :meth:`CallBook.new_key`)."""
        return self._book.new_key(run_id, register=False)

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
        goes on) stops at the last piece that keeps its output within the reservation:
        when one more piece as large as the largest so far would pass it. A call whose
        limit was sent (or reserved at the model's maximum) stops only on proof that
        the provider ignored it: more pieces than reserved tokens, or more English
        tokens, counted, than the limit (times 1.1 when the count uses a nearby
        encoding) -- so a counting difference never cuts a good answer, and a
        provider sending many tokens per chunk is cut within one chunk of its limit.
        """
        call = self._book.current(run_id)
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
            call.largest_piece = max(call.largest_piece, produced)
            if text.isascii():
                call.ascii_produced += produced
        counted = max(call.produced, call.pieces)
        if call.passed_hold() and counted:
            limit = call.output_limit
            raise stream_stopped(call.model, counted, limit, self.enforcer, call.task_id)

    # -- after the call --------------------------------------------------------------

    def on_llm_end(
        self,
        response: LLMResult,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> Any:
        """Settle the call at its reported usage (or an estimate)."""
        call = self._book.pop(run_id)
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
        key = call.key if call else str(run_id)
        cost = self.enforcer.settle(key, usage, model=model, task_id=task_id)
        budget_events.settled(run_id, usage, cost, model=model, task_id=task_id)

    def on_llm_error(
        self,
        error: BaseException,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> Any:
        """Settle a failed call at what was reported, else at an estimate: its hold if
        it was sent and got no answer (the provider may bill it), else its input."""
        call = self._book.pop(run_id)
        response = kwargs.get("response")
        usage = usage_from_result(response) if response is not None else None
        if usage is None:
            if call is None:
                return
            if sent_unanswered(error):
                usage = held_usage(call, self.enforcer)
            else:
                # a stream cut short: what was already produced was billed too
                output = self._count_output(response, call.model) if response is not None else 0
                output = max(output, call.produced, call.pieces)
                usage = Usage(input_tokens=call.input_tokens, output_tokens=output, estimated=True)
        else:
            usage = corrected_usage(usage, call)
        model = call.model if call else None
        task_id = call.task_id if call else None
        key = call.key if call else str(run_id)
        cost = self.enforcer.settle(key, usage, model=model, task_id=task_id)
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
        calls = self._book.take_pending(scope)
        for call in calls:
            self.enforcer.release(call.key)
        return len(calls)

    def charge_pending(self, scope: str | None = None) -> int:
        """Charge calls that started but never ended at their hold; returns how many.

        Such calls were cancelled or timed out after they were sent (asyncio
        cancellation ends a call without an end or error event): the provider may
        bill them up to what was held, so that is what they cost here, marked
        ``estimated`` -- never released. With ``scope``, only calls started under
        that scope (a ``with_budget`` invocation, an orchestrator task attempt).
        """
        calls = self._book.take_pending(scope)
        for call in calls:
            usage = held_usage(call, self.enforcer)
            cost = self.enforcer.settle(call.key, usage, model=call.model, task_id=call.task_id)
            budget_events.settled(call.run_id, usage, cost, model=call.model, task_id=call.task_id)
        return len(calls)

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
        self._book.clear()
        self.enforcer.reset()
