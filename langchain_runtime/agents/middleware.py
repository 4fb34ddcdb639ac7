"""``BudgetMiddleware``: a hard budget inside a LangChain v1 ``create_agent`` agent."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal
from uuid import uuid4

from langchain.agents.middleware import AgentMiddleware, ModelRequest, ModelResponse
from langchain_core.messages import AIMessage, BaseMessage

from langchain_runtime.cost import _limits
from langchain_runtime.cost._arguments import budget_from_arguments, refuse_unknown_arguments
from langchain_runtime.cost._call_state import sent_unanswered
from langchain_runtime.cost.budget import BudgetEnforcer, ledger_gate
from langchain_runtime.cost.catalog import ModelCatalog
from langchain_runtime.cost.handler import install_quiet_refusals
from langchain_runtime.cost.pricing import cache_write_ttl
from langchain_runtime.cost.tokens import TokenEstimator
from langchain_runtime.cost.tracking import UsageTotals
from langchain_runtime.domain import Budget, Cost, Usage
from langchain_runtime.errors import (
    BudgetExceededError,
    ConfigurationError,
    LedgerUnavailableError,
)

if TYPE_CHECKING:
    from langchain_runtime.cost.ledger import BudgetLedger

__all__ = ["BudgetMiddleware"]

ExitBehavior = Literal["end", "error"]
#: ``response_metadata["finish_reason"]`` of the final message an ended agent gets.
BUDGET_FINISH_REASON = "budget_exceeded"


class _Plan:
    __slots__ = ("call_id", "input_tokens", "key", "limit", "model")

    def __init__(
        self, call_id: str, model: str | None, key: str, limit: int, input_tokens: int
    ) -> None:
        self.call_id = call_id
        self.model = model
        self.key = key
        self.limit = limit
        self.input_tokens = input_tokens


def _ran_out(
    exc: BudgetExceededError,
    held: Decimal = Decimal(0),
    in_flight: int = 0,
    settled: Decimal | None = None,
) -> str:
    if isinstance(exc, LedgerUnavailableError):
        return f"The shared budget ledger is unavailable, so the call was not sent: {exc}"
    if " in scope " in str(exc):  # a shared ledger scope refused: its message names it
        return f"The budget ran out: {exc}"
    if isinstance(exc.limit, Decimal):
        spent = exc.spent if exc.spent is not None else Decimal(0)
        what = f"${spent:.6f} of ${exc.limit} spent"
        if held > 0:
            # The money is only promised to calls still running: say so, truthfully.
            calls = "call" if in_flight == 1 else "calls"
            spent = settled if settled is not None else spent
            return (
                f"Not sent: the budget has no room for this call now: "
                f"${spent:.6f} of ${exc.limit} spent, "
                f"${held:.6f} held by {in_flight} {calls} in flight; not even a minimal "
                "answer fits in what is left."
            )
    else:
        what = f"{exc.spent} of {exc.limit} tokens used"
    return f"The budget ran out: {what}; not even a minimal answer fits in what is left."


class BudgetMiddleware(AgentMiddleware):
    """Keeps every model call of a ``create_agent`` agent inside one hard budget.

    Before each model call the middleware counts the request's input tokens (system
    message, messages and tool schemas) and sets the call's output limit
    (``max_tokens``, or what the provider calls it: Google's ``max_output_tokens``,
    Ollama's ``num_predict``) to what the budget can still pay for -- never above the
    limit the call or the model already has, nor above the model's maximum output
    (the catalog's, else the model's LangChain profile). That limit is held as a reservation
    until the response comes back, then settled at the response's
    ``usage_metadata`` (an estimate, marked ``estimated``, when the provider
    reported none). The decision and the hold are one atomic step, so concurrent
    runs sharing the middleware never overspend together.

    When not even ``min_output_tokens`` fit, the call is not sent:
    ``exit_behavior="end"`` ends the agent with a final ``AIMessage`` saying that the
    budget ran out (with what was spent and the limit;
    ``response_metadata["finish_reason"] == "budget_exceeded"``), ``"error"``
    raises :class:`~langchain_runtime.errors.BudgetExceededError`.

    The budget is cumulative over every run of every agent the instance is given
    to (sync and async); :meth:`reset` starts it over. List it last in
    ``middleware=[...]`` so that it wraps the model call itself: a retrying or
    model-switching middleware listed after it would act inside one reservation.

    Args:
        max_cost: Most money (the catalog's currency, USD) all calls may cost.
        max_tokens: Most tokens (input + output) all calls may use.
        exit_behavior: ``"end"`` (default) or ``"error"``, when the budget runs out.
        catalog: Prices (the bundled table by default).
        ledger: A shared :class:`~langchain_runtime.cost.ledger.BudgetLedger`: each
            call also reserves in ``scopes`` (all or nothing with the limits above),
            and its output limit is clamped to what they have left.
        scopes: The ledger scopes (``"team:research"``...); required with ``ledger``.
        default_model: Model name for pricing a model that does not name itself.
        estimator: Token counter (a default :class:`TokenEstimator`).
        min_output_tokens: Smallest answer worth sending a call for (default 1).
        expected_output_tokens: Ceiling for a model whose maximum output is unknown
            (no profile, not in the catalog) and that sets no limit itself.
        max_output_tokens: The most output one call may be clamped to (and hold), so
            that parallel runs share what is left instead of the first taking it all.

    Raises:
        ConfigurationError: A bad ``exit_behavior``; ``scopes`` without ``ledger``
            (or the reverse), or a bad scope name.

    Example:
        >>> from langchain.agents import create_agent
        >>> from langchain_core.language_models import FakeListChatModel
        >>> budget = BudgetMiddleware(max_tokens=40, default_model="simulated")
        >>> agent = create_agent(FakeListChatModel(responses=["Paris."]), middleware=[budget])
        >>> agent.invoke({"messages": [("user", "Capital of France?")]})["messages"][-1].content
        'Paris.'
        >>> budget.usage.total_tokens, budget.usage.estimated  # the fake reports no usage
        (13, True)
        >>> agent.invoke({"messages": [("user", "And of Italy? " * 20)]})["messages"][-1].content
        'The budget ran out: 13 of 40 tokens used; not even a minimal answer fits in what is left.'
    """

    def __init__(
        self,
        max_cost: Decimal | float | str | None = None,
        max_tokens: int | None = None,
        *,
        exit_behavior: ExitBehavior = "end",
        catalog: ModelCatalog | None = None,
        ledger: BudgetLedger | None = None,
        scopes: Sequence[str] = (),
        default_model: str | None = None,
        estimator: TokenEstimator | None = None,
        min_output_tokens: int = 1,
        expected_output_tokens: int = 1024,
        max_output_tokens: int | None = None,
        **unknown: Any,
    ) -> None:
        super().__init__()
        known = inspect.signature(BudgetMiddleware.__init__).parameters
        refuse_unknown_arguments("BudgetMiddleware", unknown, set(known) - {"self", "unknown"})
        if exit_behavior not in ("end", "error"):
            raise ConfigurationError(
                f"exit_behavior must be 'end' or 'error', got {exit_behavior!r}"
            )
        if min_output_tokens < 1:
            raise ConfigurationError(f"min_output_tokens must be >= 1, got {min_output_tokens}")
        self.exit_behavior: ExitBehavior = exit_behavior
        self.enforcer = BudgetEnforcer(
            budget_from_arguments(
                "BudgetMiddleware",
                max_cost=max_cost,
                max_tokens=max_tokens,
                expected_output_tokens=expected_output_tokens,
            ),
            catalog,
            gate=ledger_gate(ledger, scopes, "BudgetMiddleware"),
        )
        self.estimator = estimator or TokenEstimator()
        self.default_model = default_model
        self.min_output_tokens = min_output_tokens
        if max_output_tokens is not None and max_output_tokens < min_output_tokens:
            raise ConfigurationError(
                f"max_output_tokens must be >= min_output_tokens ({min_output_tokens}), "
                f"got {max_output_tokens}"
            )
        #: Most output one call may hold, so that parallel runs share what is left.
        self.max_output_tokens = max_output_tokens
        install_quiet_refusals()

    def __repr__(self) -> str:
        return f"BudgetMiddleware({self.budget!r}, spent={self.spent})"

    # -- the model call ----------------------------------------------------------------

    def wrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], ModelResponse[Any]],
    ) -> ModelResponse[Any]:
        """Clamp, reserve, call, settle (or end the agent when the budget is spent)."""
        try:
            plan = self._plan(request)
        except BudgetExceededError as exc:
            return self._refused(exc)
        try:
            response = handler(self._clamped(request, plan))
        except BaseException as exc:
            self._settle_failed(plan, exc)
            raise
        self._settle(plan, response)
        return response

    async def awrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], Awaitable[ModelResponse[Any]]],
    ) -> ModelResponse[Any]:
        """Async twin of :meth:`wrap_model_call` (same planning and settling)."""
        try:
            plan = self._plan(request)
        except BudgetExceededError as exc:
            return self._refused(exc)
        try:
            response = await handler(self._clamped(request, plan))
        except BaseException as exc:
            self._settle_failed(plan, exc)
            raise
        self._settle(plan, response)
        return response

    def _plan(self, request: ModelRequest[Any]) -> _Plan:
        model = request.model
        name = _limits.model_name(model) or self.default_model
        messages: list[BaseMessage] = list(request.messages)
        if request.system_message is not None:
            messages.insert(0, request.system_message)
        input_tokens = _limits.count_input(self.estimator, messages, name, request.tools)
        ceiling = _limits.ceiling(
            model,
            name,
            request.model_settings,
            self.enforcer.calculator.catalog,
            self.budget.expected_output_tokens,
        )
        call_id = f"agent:{uuid4().hex}"
        res = self.enforcer.reserve_up_to(
            call_id,
            name,
            input_tokens,
            min(ceiling.tokens, self.max_output_tokens or ceiling.tokens),
            min_output_tokens=self.min_output_tokens,
            cache_write=cache_write_ttl(messages, request.tools, dict(request.model_settings)),
        )
        return _Plan(call_id, name, _limits.limit_name(model), res.output_tokens, input_tokens)

    def _clamped(self, request: ModelRequest[Any], plan: _Plan) -> ModelRequest[Any]:
        limited = self.budget.max_cost is not None or self.budget.max_tokens is not None
        if not limited and self.enforcer.gate is None:
            return request  # nothing to enforce: only track, and leave the call alone
        settings = {
            k: v for k, v in request.model_settings.items() if k not in _limits.OUTPUT_LIMIT_NAMES
        }
        settings[plan.key] = plan.limit
        return request.override(model_settings=settings)

    def _refused(self, exc: BudgetExceededError) -> ModelResponse[Any]:
        if self.exit_behavior == "error":
            raise exc
        metadata = {"finish_reason": BUDGET_FINISH_REASON}
        enforcer = self.enforcer
        text = _ran_out(exc, enforcer.reserved.amount, enforcer.in_flight, enforcer.spent.amount)
        return ModelResponse(result=[AIMessage(text, response_metadata=metadata)])

    # -- settling ----------------------------------------------------------------------

    def _settle(self, plan: _Plan, response: ModelResponse[Any]) -> None:
        message = next((m for m in response.result if isinstance(m, AIMessage)), None)
        metadata = message.usage_metadata if message is not None else None
        if metadata:
            usage = Usage.from_usage_metadata(metadata)
        else:
            usage = Usage(
                input_tokens=plan.input_tokens,
                output_tokens=_limits.output_tokens(
                    self.estimator, message.text if message else "", message, plan.model
                ),
                estimated=True,
            )
        self.enforcer.settle(plan.call_id, usage, model=plan.model)

    def _settle_failed(self, plan: _Plan, error: BaseException) -> None:
        if not isinstance(error, Exception) or sent_unanswered(error):
            # Cancelled or interrupted (asyncio.wait_for, Ctrl-C) after it was sent, or
            # sent with no answer back (a read timeout, a dropped connection): the
            # provider may bill up to the limit it was given, so that is what it costs.
            usage = Usage(input_tokens=plan.input_tokens, output_tokens=plan.limit, estimated=True)
        else:
            # The provider answered with an error: its input may have been billed.
            usage = Usage(input_tokens=plan.input_tokens, estimated=True)
        self.enforcer.settle(plan.call_id, usage, model=plan.model)

    # -- where we stand ----------------------------------------------------------------

    @property
    def budget(self) -> Budget:
        """The limits enforced."""
        return self.enforcer.budget

    @property
    def usage(self) -> Usage:
        """Usage of every settled model call so far."""
        return self.enforcer.usage

    @property
    def spent(self) -> Cost:
        """Cost of every settled model call so far."""
        return self.enforcer.spent

    @property
    def remaining(self) -> Cost | None:
        """Money left for new calls, or None without a cost limit."""
        return self.enforcer.remaining

    @property
    def remaining_tokens(self) -> int | None:
        """Tokens left for new calls, or None without a token limit."""
        return self.enforcer.remaining_tokens

    def by_model(self) -> dict[str, UsageTotals]:
        """Usage, cost and calls per model."""
        return self.enforcer.tracker.by_model()

    def reset(self) -> None:
        """Start the budget over: forget all spending so far (the ledger keeps its own)."""
        self.enforcer.reset()

    def close(self) -> None:
        """Stop renewing the ledger leases of calls still in flight (no-op without one)."""
        self.enforcer.close()
