"""OpenTelemetry traces and metrics for any LangChain Runnable (extra ``otel``).

:class:`OpenTelemetryCallbackHandler` turns LangChain's callback events into spans:

- ``invoke_workflow <name>``: the outermost chain run (an ``Orchestrator`` run, an
  agent, a graph, a chain);
- ``task <id>``: each orchestrator task attempt (a child run carrying the
  ``lcr_task_id`` metadata);
- ``chat <model>`` (``text_completion <model>`` for completion models): each model
  call, with the OpenTelemetry GenAI semantic-convention attributes, its cost from
  the model catalog and the budget's decisions as span events;
- ``execute_tool <name>``: each tool call.

Other chain runs (prompt templates, parsers, graph nodes) get no span of their own;
their children attach to the nearest span above them. Spans are started with
explicit parent contexts, so nesting follows LangChain's run tree across threads,
event loops and parallel tasks.

The cost attributes ``gen_ai.usage.cost.amount`` / ``gen_ai.usage.cost.currency``
follow an open proposal to the GenAI conventions, not a released attribute.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler

from langchain_runtime.observability import _budget_events, _genai
from langchain_runtime.observability._budget_events import BudgetEvent

if TYPE_CHECKING:
    from langchain_core.messages import BaseMessage
    from langchain_core.outputs import LLMResult
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import Span, TracerProvider

    from langchain_runtime.cost.catalog import ModelCatalog

__all__ = ["OpenTelemetryCallbackHandler"]

logger = logging.getLogger(__name__)

_INSTALL = "pip install 'langchain-runtime[otel]'"
_SCOPE = "langchain_runtime"
_TASK_KEY = "lcr_task_id"
_MAX_PENDING = 10_000  # budget events waiting for a span that may never start
_MAX_TRACE_IDS = 10_000

_WORKFLOW, _TASK, _MODEL, _TOOL = "workflow", "task", "model", "tool"
_UNSEEN = object()


class _Rec:
    """One run the handler follows; ``span`` is None for a run with no span."""

    __slots__ = (
        "attempts",
        "attrs",
        "deferred_end",
        "kind",
        "parent",
        "parent_run_id",
        "refusal_recorded",
        "reserved",
        "settled",
        "span",
        "started",
        "task_id",
    )

    def __init__(
        self,
        kind: str,
        span: Span | None,
        parent: _Rec | None,
        task_id: str | None,
        parent_run_id: UUID | None,
    ) -> None:
        self.kind = kind
        self.span = span
        self.parent = parent
        self.task_id = task_id
        self.parent_run_id = parent_run_id
        self.started = time.perf_counter()
        self.attrs: dict[str, Any] = {}
        self.attempts: dict[str, int] | None = None
        self.reserved = False
        self.settled = False
        self.refusal_recorded = False
        self.deferred_end: int | None = None


def _error_type(error: BaseException) -> str:
    return type(error).__qualname__


class OpenTelemetryCallbackHandler(BaseCallbackHandler):
    """Spans and metrics for every run, task, model call and tool call it sees.

    Pass it like any callback handler (``config={"callbacks": [handler]}``) to a chat
    model, an agent, a LangGraph graph, a chain or an :class:`Orchestrator`; or install
    it for every run in the process with :func:`instrument_langchain` (what
    ``langchain-runtime serve --otel`` does).

    Model-call spans carry ``gen_ai.operation.name``, ``gen_ai.provider.name``,
    ``gen_ai.request.model``, ``gen_ai.response.model``, ``gen_ai.request.max_tokens``
    (the limit actually sent, after the runtime clamped it), the usage
    (``gen_ai.usage.input_tokens``, ``output_tokens``, ``cache_read.input_tokens``,
    ``cache_creation.input_tokens``, ``reasoning.output_tokens``, as the provider
    reported them), ``gen_ai.response.finish_reasons``, and the call's cost priced by
    the model catalog as ``gen_ai.usage.cost.amount``/``gen_ai.usage.cost.currency``
    (an open proposal to the conventions). Budget decisions are span events
    (``langchain_runtime.budget.reserved``/``refused``/``settled``). Errors set the
    span status. Prompts and answers are recorded only with ``capture_content=True``
    (``gen_ai.input.messages``/``gen_ai.output.messages``).

    Metrics: ``gen_ai.client.token.usage`` (histogram, by ``gen_ai.token.type``),
    ``gen_ai.client.operation.duration`` (histogram, seconds) and
    ``langchain_runtime.client.cost`` (counter, by currency).

    Args:
        tracer_provider: Where spans go (default: the global tracer provider).
        meter_provider: Where metrics go (default: the global meter provider).
        capture_content: Record prompt and completion text on model-call spans.
        catalog: Prices for the cost attributes (the bundled table by default).

    Raises:
        ImportError: ``opentelemetry-api`` is not installed.

    Example:
        >>> from opentelemetry.sdk.trace import TracerProvider
        >>> from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        >>> from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
        ...     InMemorySpanExporter)
        >>> from langchain_runtime.testing import SimulatedChatModel
        >>> exporter = InMemorySpanExporter()
        >>> provider = TracerProvider()
        >>> provider.add_span_processor(SimpleSpanProcessor(exporter))
        >>> handler = OpenTelemetryCallbackHandler(tracer_provider=provider)
        >>> _ = SimulatedChatModel().invoke("hi", config={"callbacks": [handler]})
        >>> span = exporter.get_finished_spans()[0]
        >>> span.name, span.attributes["gen_ai.request.model"]
        ('chat simulated', 'simulated')
    """

    raise_error = False
    # Inline, so on async paths it sees a call's start before an inline budget handler
    # can refuse it (and records the refusal), in the order the handlers were given.
    run_inline = True

    # retriever, retry and custom events make no span: skip them cheaply
    @property
    def ignore_retriever(self) -> bool:
        return True

    @property
    def ignore_retry(self) -> bool:
        return True

    @property
    def ignore_custom_event(self) -> bool:
        return True

    def __init__(
        self,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        *,
        capture_content: bool = False,
        catalog: ModelCatalog | None = None,
    ) -> None:
        try:
            from opentelemetry import metrics, trace
        except ImportError as exc:
            raise ImportError(
                f"OpenTelemetryCallbackHandler needs opentelemetry-api; install it with: {_INSTALL}"
            ) from exc
        from langchain_runtime._version import __version__

        self._trace = trace
        self._client = trace.SpanKind.CLIENT
        self._tracer = trace.get_tracer(_SCOPE, __version__, tracer_provider=tracer_provider)
        meter = metrics.get_meter(_SCOPE, __version__, meter_provider=meter_provider)
        self._tokens = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Number of input and output tokens used per model call.",
            explicit_bucket_boundaries_advisory=[
                1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304,
            ],
        )  # fmt: skip
        self._duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="Duration of GenAI operations (model calls).",
            explicit_bucket_boundaries_advisory=[
                0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48,
                40.96, 81.92,
            ],
        )  # fmt: skip
        self._cost = meter.create_counter(
            "langchain_runtime.client.cost",
            unit="{currency}",
            description="Money spent on model calls, priced by the model catalog.",
        )
        self.capture_content = capture_content
        self._catalog = catalog
        self._calculator: Any = None
        self._infos: dict[str, Any] = {}  # model name -> catalog entry (None: no price)
        self._lock = threading.Lock()
        self._recs: dict[UUID, _Rec | _Passthrough] = {}
        self._pending: OrderedDict[str, list[tuple[BudgetEvent, int]]] = OrderedDict()
        self._trace_ids: OrderedDict[str, str] = OrderedDict()
        # held weakly by the registry: the listener goes away with this handler
        _budget_events.add_budget_listener(self._on_budget_event)

    def __repr__(self) -> str:
        return f"OpenTelemetryCallbackHandler(capture_content={self.capture_content})"

    # ------------------------------------------------------------------ lookups
    def trace_id_for(self, run_id: str | UUID) -> str | None:
        """The trace id (32 hex digits) of a recent top-level run.

        ``run_id`` is the run's LangChain run id, or the ``api_run_id`` metadata the
        sidecar gives its runs. The last 10,000 runs are remembered.
        """
        with self._lock:
            return self._trace_ids.get(str(run_id))

    def _remember_trace(self, span: Span, run_id: UUID, metadata: Mapping[str, Any]) -> None:
        trace_id = format(span.get_span_context().trace_id, "032x")
        keys = [str(run_id)]
        api_id = metadata.get("api_run_id")
        if isinstance(api_id, str):
            keys.append(api_id)
        with self._lock:
            for key in keys:
                self._trace_ids[key] = trace_id
            while len(self._trace_ids) > _MAX_TRACE_IDS:
                self._trace_ids.popitem(last=False)

    def _price(self, model: str | None, usage: Any) -> Any:
        if model is None:
            return None
        if self._calculator is None:
            from langchain_runtime.cost.pricing import CostCalculator

            self._calculator = CostCalculator(self._catalog)
        info = self._infos.get(model, _UNSEEN)
        if info is _UNSEEN:
            try:
                info = self._calculator.info(model)
            except Exception:  # no known price: the span simply has no cost
                info = None
            if len(self._infos) < 1024:
                self._infos[model] = info
        return self._calculator.cost(info, usage) if info is not None else None

    def _context(self, parent: _Rec | _Passthrough | None) -> Any:
        if parent is None or parent.span is None:
            return None  # the ambient context: a caller's own span becomes the parent
        return self._trace.set_span_in_context(parent.span)

    def _parent(self, parent_run_id: UUID | None) -> _Rec | _Passthrough | None:
        if parent_run_id is None:
            return None
        return self._recs.get(parent_run_id)

    # ------------------------------------------------------------------ chains
    def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        meta = metadata or {}
        parent = self._parent(parent_run_id)
        task_id = meta.get(_TASK_KEY)
        if parent is None:
            name = kwargs.get("name") or _serialized_name(serialized) or "chain"
            span = self._tracer.start_span(
                f"invoke_workflow {name}",
                context=None,
                attributes={
                    "gen_ai.operation.name": "invoke_workflow",
                    "langchain_runtime.run.name": str(name),
                    "langchain_runtime.run.id": str(meta.get("api_run_id") or run_id),
                },
            )
            rec = _Rec(_WORKFLOW, span, None, None, parent_run_id)
            rec.attempts = {}
            self._remember_trace(span, run_id, meta)
        elif isinstance(task_id, str) and task_id != parent.task_id:
            above = _resolve(parent)
            root = _root_of(above)
            counts = root.attempts if root is not None and root.attempts is not None else {}
            attempt = counts[task_id] = counts.get(task_id, 0) + 1
            span = self._tracer.start_span(
                f"task {task_id}",
                context=self._context(above),
                attributes={"langchain_runtime.task.id": task_id,
                            "langchain_runtime.task.attempt": attempt},
            )  # fmt: skip
            rec = _Rec(_TASK, span, above, task_id, parent_run_id)
        else:
            # no span of its own: its children attach to the nearest span above
            with self._lock:
                self._recs[run_id] = _Passthrough(_resolve(parent), parent_run_id)
            return
        with self._lock:
            self._recs[run_id] = rec

    def on_chain_end(
        self, outputs: Any, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        rec = self._pop(run_id)
        if rec is None or isinstance(rec, _Passthrough):
            return
        assert rec.span is not None
        if rec.kind == _TASK:
            rec.span.set_attribute("langchain_runtime.task.state", "completed")
        elif rec.kind == _WORKFLOW:
            _genai.run_result_attributes(rec.span, outputs)
            self._end_deferred(rec)
        rec.span.end()

    def on_chain_error(
        self,
        error: BaseException,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        self._close_refused_children(run_id, error)
        rec = self._pop(run_id)
        if rec is None or isinstance(rec, _Passthrough):
            return
        span = rec.span
        assert span is not None
        if _is_budget_error(error) and not rec.refusal_recorded:
            self._refusal_event(rec, _genai.refusal_attributes(error))
        if rec.kind == _TASK:
            state = "cancelled" if _is_cancellation(error) else "failed"
            span.set_attribute("langchain_runtime.task.state", state)
        elif rec.kind == _WORKFLOW:
            self._end_deferred(rec)
        self._fail(span, error)
        span.end()

    # ------------------------------------------------------------------ models
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
    ) -> None:
        rec = self._start_model("chat", serialized, run_id, parent_run_id, metadata, kwargs)
        if self.capture_content and rec.span is not None:
            rec.span.set_attribute("gen_ai.input.messages", _genai.input_messages_json(messages))

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
    ) -> None:
        rec = self._start_model(
            "text_completion", serialized, run_id, parent_run_id, metadata, kwargs
        )
        if self.capture_content and rec.span is not None:
            import json

            rec.span.set_attribute("gen_ai.input.messages", json.dumps(prompts))

    def _start_model(
        self,
        operation: str,
        serialized: Mapping[str, Any] | None,
        run_id: UUID,
        parent_run_id: UUID | None,
        metadata: Mapping[str, Any] | None,
        kwargs: Mapping[str, Any],
    ) -> _Rec:
        meta = metadata or {}
        params: Mapping[str, Any] = kwargs.get("invocation_params") or {}
        model = _genai.request_model(params, meta, serialized)
        provider = _genai.provider_name(meta, serialized)
        attrs: dict[str, Any] = {
            "gen_ai.operation.name": operation,
            "gen_ai.provider.name": provider,
        }
        if model is not None:
            attrs["gen_ai.request.model"] = model
        limit = _genai.max_output_tokens(params, meta)
        if limit is not None:
            attrs["gen_ai.request.max_tokens"] = limit
        temperature = params.get("temperature")
        if isinstance(temperature, (int, float)) and not isinstance(temperature, bool):
            attrs["gen_ai.request.temperature"] = float(temperature)
        parent = _resolve(self._parent(parent_run_id))
        task_id = meta.get(_TASK_KEY)
        if isinstance(task_id, str):
            attrs["langchain_runtime.task.id"] = task_id
        early = None
        if self._pending:  # a budget handler ahead of this one already decided
            with self._lock:
                early = self._pending.pop(str(run_id), None)
        span = self._tracer.start_span(
            f"{operation} {model or 'unknown'}",
            context=self._context(parent),
            kind=self._client,
            attributes=attrs,
            start_time=early[0][1] if early else None,
        )
        rec = _Rec(_MODEL, span, parent, task_id if isinstance(task_id, str) else None,
                   parent_run_id)  # fmt: skip
        rec.attrs = {
            "gen_ai.operation.name": operation,
            "gen_ai.provider.name": provider,
            **({"gen_ai.request.model": model} if model is not None else {}),
        }
        with self._lock:
            self._recs[run_id] = rec
        for event, ts in early or ():
            self._apply_budget_event(rec, run_id, event, ts)
        return rec

    def on_llm_end(
        self,
        response: LLMResult,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        with self._lock:
            rec = self._recs.get(run_id)
        if not isinstance(rec, _Rec) or rec.span is None or rec.kind != _MODEL:
            return
        span = rec.span
        metric_attrs = dict(rec.attrs)
        attrs: dict[str, Any] = {}  # set at once: each call into the span takes its lock
        answered = _genai.response_model(response)
        if answered is not None:
            attrs["gen_ai.response.model"] = metric_attrs["gen_ai.response.model"] = answered
        reasons = _genai.finish_reasons(response)
        if reasons:
            attrs["gen_ai.response.finish_reasons"] = reasons
        usage = _genai.usage_of(response)
        cost = None
        if usage is not None:
            attrs["gen_ai.usage.input_tokens"] = usage.input_tokens
            attrs["gen_ai.usage.output_tokens"] = usage.output_tokens
            attrs["gen_ai.usage.cache_read.input_tokens"] = usage.cache_read_tokens
            attrs["gen_ai.usage.cache_creation.input_tokens"] = usage.cache_creation_tokens
            attrs["gen_ai.usage.reasoning.output_tokens"] = usage.reasoning_tokens
            cost = self._price(rec.attrs.get("gen_ai.request.model") or answered, usage)
            if cost is not None:
                attrs["gen_ai.usage.cost.amount"] = float(cost.amount)
                attrs["gen_ai.usage.cost.currency"] = cost.currency
        if self.capture_content:
            attrs["gen_ai.output.messages"] = _genai.output_messages_json(response, reasons)
        span.set_attributes(attrs)
        if usage is not None:
            self._tokens.record(usage.input_tokens, {**metric_attrs, "gen_ai.token.type": "input"})
            self._tokens.record(
                usage.output_tokens, {**metric_attrs, "gen_ai.token.type": "output"}
            )
        if cost is not None:
            currency = {"gen_ai.usage.cost.currency": cost.currency}
            self._cost.add(float(cost.amount), {**metric_attrs, **currency})
        self._duration.record(time.perf_counter() - rec.started, metric_attrs)
        self._finish_model(run_id, rec)

    def on_llm_error(
        self,
        error: BaseException,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        with self._lock:
            rec = self._recs.get(run_id)
        if not isinstance(rec, _Rec) or rec.span is None or rec.kind != _MODEL:
            return
        self._fail(rec.span, error)
        attrs = {**rec.attrs, "error.type": _error_type(error)}
        self._duration.record(time.perf_counter() - rec.started, attrs)
        self._finish_model(run_id, rec)

    def _finish_model(self, run_id: UUID, rec: _Rec) -> None:
        """End a model span, or wait for its budget settlement when one is due."""
        assert rec.span is not None
        with self._lock:
            if rec.reserved and not rec.settled:
                rec.deferred_end = time.time_ns()  # the budget handler settles next
                return
            self._recs.pop(run_id, None)
        rec.span.end()

    def _end_deferred(self, root: _Rec) -> None:
        """End ``root``'s model spans still waiting for a settlement that never came."""
        with self._lock:
            stale = [(k, r) for k, r in self._recs.items()
                     if isinstance(r, _Rec) and r.deferred_end is not None
                     and _root_of(r) is root]  # fmt: skip
            for key, _ in stale:
                self._recs.pop(key, None)
        for _, rec in stale:
            assert rec.span is not None
            rec.span.end(end_time=rec.deferred_end)

    # ------------------------------------------------------------------ tools
    def on_tool_start(
        self,
        serialized: dict[str, Any],
        input_str: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        inputs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        name = kwargs.get("name") or (serialized or {}).get("name") or "tool"
        parent = _resolve(self._parent(parent_run_id))
        span = self._tracer.start_span(
            f"execute_tool {name}",
            context=self._context(parent),
            attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": str(name)},
        )
        task_id = (metadata or {}).get(_TASK_KEY)
        rec = _Rec(_TOOL, span, parent, task_id if isinstance(task_id, str) else None,
                   parent_run_id)  # fmt: skip
        with self._lock:
            self._recs[run_id] = rec

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        rec = self._pop(run_id)
        if isinstance(rec, _Rec) and rec.span is not None:
            rec.span.end()

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        rec = self._pop(run_id)
        if isinstance(rec, _Rec) and rec.span is not None:
            self._fail(rec.span, error)
            rec.span.end()

    # ------------------------------------------------------------------ budget
    def _on_budget_event(self, event: BudgetEvent) -> None:
        try:
            run_id: UUID | None = UUID(event.call_id)
        except ValueError:
            run_id = None  # an orchestrator plan ("plan:...") has no model span
        if run_id is None:
            return
        with self._lock:
            rec = self._recs.get(run_id)
            if not isinstance(rec, _Rec) or rec.kind != _MODEL:
                if event.kind == "refused":
                    # refused before this handler saw the call: no span will start;
                    # the error reaches the enclosing run, which records the refusal
                    self._pending.pop(event.call_id, None)
                    return
                # the budget handler ran first: keep it for the span about to start
                self._pending.setdefault(event.call_id, []).append((event, time.time_ns()))
                while len(self._pending) > _MAX_PENDING:
                    self._pending.popitem(last=False)
                return
        self._apply_budget_event(rec, run_id, event, None)

    def _apply_budget_event(
        self, rec: _Rec, run_id: UUID, event: BudgetEvent, ts: int | None
    ) -> None:
        span = rec.span
        assert span is not None
        attrs = _genai.budget_attributes(event)
        if event.kind == "reserved":
            rec.reserved = True
            span.add_event("langchain_runtime.budget.reserved", attrs, timestamp=ts)
        elif event.kind == "settled":
            span.add_event("langchain_runtime.budget.settled", attrs, timestamp=ts)
            with self._lock:
                rec.settled = True
                end = rec.deferred_end
                if end is not None:
                    self._recs.pop(run_id, None)
            if end is not None:
                span.end()  # now, so the settlement lies inside the call's span
        elif event.kind == "refused":
            self._refusal_event(rec, attrs, ts)
            if event.error is not None:
                span.record_exception(event.error)
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, event.message))
            span.set_attribute("error.type", "BudgetExceededError")
            with self._lock:
                self._recs.pop(run_id, None)
            failed = {**rec.attrs, "error.type": "BudgetExceededError"}
            self._duration.record(time.perf_counter() - rec.started, failed)
            span.end()

    def _refusal_event(self, rec: _Rec, attrs: Mapping[str, Any], ts: int | None = None) -> None:
        assert rec.span is not None
        rec.span.add_event("langchain_runtime.budget.refused", attrs, timestamp=ts)
        node: _Rec | None = rec
        while node is not None:  # the error travels up: record it once
            node.refusal_recorded = True
            node = node.parent

    def _close_refused_children(self, run_id: UUID, error: BaseException) -> None:
        """End model spans under ``run_id`` that never got an end or error event.

        That is a call stopped in ``on_chat_model_start`` by another handler (a
        budget refusal); LangChain sends nothing more about it.
        """
        with self._lock:
            orphans = [(k, r) for k, r in self._recs.items()
                       if isinstance(r, _Rec) and r.kind == _MODEL and r.parent_run_id == run_id
                       and r.deferred_end is None]  # fmt: skip
            for key, _ in orphans:
                self._recs.pop(key, None)
        for _, rec in orphans:
            assert rec.span is not None
            if _is_budget_error(error) and not rec.refusal_recorded:
                self._refusal_event(rec, _genai.refusal_attributes(error))
            self._fail(rec.span, error)
            self._duration.record(
                time.perf_counter() - rec.started, {**rec.attrs, "error.type": _error_type(error)}
            )
            rec.span.end()

    # ------------------------------------------------------------------ helpers
    def _pop(self, run_id: UUID) -> _Rec | _Passthrough | None:
        with self._lock:
            return self._recs.pop(run_id, None)

    def _fail(self, span: Span, error: BaseException) -> None:
        if _is_cancellation(error):
            span.set_attribute("error.type", "cancelled")
        else:
            span.record_exception(error)
            span.set_attribute("error.type", _error_type(error))
        span.set_status(
            self._trace.Status(self._trace.StatusCode.ERROR, f"{_error_type(error)}: {error}")
        )


class _Passthrough:
    """A chain run with no span: stands for the nearest spanned run above it."""

    __slots__ = ("parent_run_id", "target")
    kind = "passthrough"

    def __init__(self, target: _Rec | None, parent_run_id: UUID | None) -> None:
        self.target = target
        self.parent_run_id = parent_run_id

    @property
    def span(self) -> Span | None:
        return self.target.span if self.target is not None else None

    @property
    def task_id(self) -> str | None:
        return self.target.task_id if self.target is not None else None

    @property
    def parent(self) -> _Rec | None:
        return self.target.parent if self.target is not None else None

    @property
    def attempts(self) -> dict[str, int] | None:
        return self.target.attempts if self.target is not None else None


def _root_of(rec: _Rec | None) -> _Rec | None:
    while rec is not None and rec.parent is not None:
        rec = rec.parent
    return rec


def _resolve(rec: Any) -> _Rec | None:
    if isinstance(rec, _Passthrough):
        return rec.target
    return rec if isinstance(rec, _Rec) else None


def _serialized_name(serialized: Mapping[str, Any] | None) -> str | None:
    if not serialized:
        return None
    name = serialized.get("name")
    if isinstance(name, str):
        return name
    ident = serialized.get("id")
    if isinstance(ident, Sequence) and ident and isinstance(ident[-1], str):
        return ident[-1]
    return None


def _is_cancellation(error: BaseException) -> bool:
    import asyncio

    return isinstance(error, asyncio.CancelledError)


def _is_budget_error(error: BaseException) -> bool:
    from langchain_runtime.errors import BudgetExceededError

    return isinstance(error, BudgetExceededError)
