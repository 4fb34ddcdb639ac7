"""``with_budget``: one hard budget over every model call inside any Runnable."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast
from uuid import UUID, uuid4

from langchain_core.callbacks import BaseCallbackManager
from langchain_core.runnables import Runnable, RunnableConfig, RunnableSerializable
from langchain_core.runnables.base import coerce_to_runnable
from langchain_core.runnables.config import ensure_config, merge_configs
from langchain_core.runnables.graph import Graph
from langchain_core.runnables.utils import ConfigurableFieldSpec, Input, Output
from langchain_core.utils.pydantic import TypeBaseModel
from pydantic import ConfigDict

from langchain_runtime.cost import _limits
from langchain_runtime.cost._arguments import budget_from_arguments, refuse_unknown_arguments
from langchain_runtime.cost.catalog import ModelCatalog
from langchain_runtime.cost.handler import (
    RESERVATION_METADATA_KEY,
    SCOPE_METADATA_KEY,
    BudgetCallbackHandler,
)
from langchain_runtime.cost.pricing import cache_write_ttl
from langchain_runtime.cost.tokens import TokenEstimator
from langchain_runtime.cost.tracking import UsageTotals
from langchain_runtime.domain import Budget, Cost, Usage
from langchain_runtime.errors import ConfigurationError

if TYPE_CHECKING:
    from langchain_runtime.cost.ledger import BudgetLedger

__all__ = ["BudgetedRunnable", "with_budget"]


class BudgetedRunnable(RunnableSerializable[Input, Output]):
    """A Runnable that runs ``bound`` with a :class:`BudgetCallbackHandler` attached.

    Every model call made anywhere inside ``bound`` -- the steps of an agent, the
    nodes of a LangGraph graph, the links of a chain -- is checked against one
    budget before it is sent; a call that does not fit raises
    :class:`~langchain_runtime.errors.BudgetExceededError` out of ``invoke``
    (``ainvoke``, ``stream``, ``astream``, ``batch``...). No extra run appears in
    traces: calls go straight to ``bound`` with the handler added to their callbacks.

    When ``bound`` is a chat model (or a ``bind``/``bind_tools`` binding of one),
    each call's output limit is also clamped to what the budget can still pay for
    (never above the call's or the model's own limit, nor the model's maximum
    output), so a model with a large default limit answers instead of being refused.

    The budget is cumulative over every call of this object, in any thread or event
    loop; :meth:`reset` starts it over. Build it with :func:`with_budget`.

    With a shared ledger, every call also reserves in the ledger's scopes before it
    is sent (all or nothing with this object's own budget) and its output limit is
    clamped to what they have left too. Leases of calls in flight are renewed by a
    thread that runs only while calls are in flight; :meth:`close` stops it.
    """

    bound: Runnable[Input, Output]
    handler: BudgetCallbackHandler
    #: Most output one call of a wrapped chat model may hold (None: what is left).
    max_output_tokens: int | None = None

    model_config = ConfigDict(arbitrary_types_allowed=True)

    # -- config ----------------------------------------------------------------------

    def _has_handler(self, config: RunnableConfig) -> bool:
        callbacks = config.get("callbacks")
        if isinstance(callbacks, BaseCallbackManager):
            return self.handler in callbacks.handlers
        return bool(callbacks) and self.handler in cast("list[Any]", callbacks)

    def _config(self, config: RunnableConfig | None, scope: str) -> RunnableConfig:
        config = ensure_config(config)
        patch: RunnableConfig = {"metadata": {SCOPE_METADATA_KEY: scope}}
        if not self._has_handler(config):
            patch["callbacks"] = [self.handler]
        return merge_configs(config, patch)

    def _clamp(
        self, input: Any, config: RunnableConfig, kwargs: dict[str, Any]
    ) -> tuple[RunnableConfig, dict[str, Any], str | None]:
        """For a chat model: reserve the call and clamp its output limit to what is left.

        Returns the config (with the call's run id) and kwargs (with the limit) to call
        ``bound`` with, and the run id reserved under (the handler adopts that
        reservation when the call starts). Anything else passes through unchanged.

        Raises:
            BudgetExceededError: Not even one output token fits; nothing is sent.
        """
        budget = self.handler.budget
        shared = self.handler.enforcer.gate is not None
        if budget.max_cost is None and budget.max_tokens is None and not shared:
            return config, kwargs, None
        found = _limits.unwrap_chat_model(self.bound)
        if found is None:
            return config, kwargs, None
        model, bound_kwargs = found
        params = {**bound_kwargs, **kwargs}
        name = _limits.model_name(model) or self.handler.default_model
        messages = model._convert_input(input).to_messages()
        tools = params.get("tools") or params.get("functions")
        input_tokens = _limits.count_input(
            self.handler.estimator, messages, name, tools if isinstance(tools, list) else None
        )
        enforcer = self.handler.enforcer
        ceiling = _limits.ceiling(
            model, name, params, enforcer.calculator.catalog, budget.expected_output_tokens
        )
        # A key of our own, never the caller's run_id: a reused run_id must not replace
        # the hold or the record of an earlier call (the handler adopts it by metadata).
        given = config.get("run_id")
        key = self.handler.new_call_key(given if isinstance(given, UUID) else uuid4())
        cache_write = cache_write_ttl(messages, params)
        res = enforcer.reserve_up_to(
            key,
            name,
            input_tokens,
            min(ceiling.tokens, self.max_output_tokens or ceiling.tokens),
            cache_write=cache_write,
        )
        clamped = {k: v for k, v in kwargs.items() if k not in _limits.OUTPUT_LIMIT_NAMES}
        clamped[_limits.limit_name(model)] = res.output_tokens
        metadata = {**config.get("metadata", {}), RESERVATION_METADATA_KEY: key}
        return {**config, "metadata": metadata}, clamped, key

    def _done(self, scope: str, run_id: str | None, error: BaseException | None = None) -> None:
        if error is not None and not isinstance(error, Exception):
            # Cancelled or interrupted (asyncio.wait_for, a task timeout, Ctrl-C): a call
            # that started may have been sent and will be billed; it costs its hold.
            self.handler.charge_pending(scope)
        else:
            # Anything still open was stopped before sending (another handler refused).
            self.handler.release_pending(scope)
        if run_id is not None:
            self.handler.enforcer.release(run_id)  # a call stopped before it started

    # -- running ---------------------------------------------------------------------

    def invoke(self, input: Input, config: RunnableConfig | None = None, **kwargs: Any) -> Output:
        scope = uuid4().hex
        config, kwargs, run_id = self._clamp(input, self._config(config, scope), kwargs)
        try:
            return self.bound.invoke(input, config, **kwargs)
        except BaseException as exc:
            self._done(scope, run_id, exc)
            raise
        finally:
            self._done(scope, run_id)

    async def ainvoke(
        self, input: Input, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Output:
        scope = uuid4().hex
        config, kwargs, run_id = self._clamp(input, self._config(config, scope), kwargs)
        try:
            return await self.bound.ainvoke(input, config, **kwargs)
        except BaseException as exc:
            self._done(scope, run_id, exc)
            raise
        finally:
            self._done(scope, run_id)

    def stream(
        self, input: Input, config: RunnableConfig | None = None, **kwargs: Any | None
    ) -> Iterator[Output]:
        scope = uuid4().hex
        config, kwargs, run_id = self._clamp(input, self._config(config, scope), kwargs)
        try:
            yield from self.bound.stream(input, config, **kwargs)
        except BaseException as exc:
            self._done(scope, run_id, exc)
            raise
        finally:
            self._done(scope, run_id)

    async def astream(
        self, input: Input, config: RunnableConfig | None = None, **kwargs: Any | None
    ) -> AsyncIterator[Output]:
        scope = uuid4().hex
        config, kwargs, run_id = self._clamp(input, self._config(config, scope), kwargs)
        try:
            async for chunk in self.bound.astream(input, config, **kwargs):
                yield chunk
        except BaseException as exc:
            self._done(scope, run_id, exc)
            raise
        finally:
            self._done(scope, run_id)

    # -- describing ------------------------------------------------------------------

    def get_name(self, suffix: str | None = None, *, name: str | None = None) -> str:
        return self.bound.get_name(suffix, name=name)

    @property
    def InputType(self) -> type[Input]:
        return self.bound.InputType

    @property
    def OutputType(self) -> type[Output]:
        return self.bound.OutputType

    def get_input_schema(self, config: RunnableConfig | None = None) -> TypeBaseModel:
        return self.bound.get_input_schema(config)

    def get_output_schema(self, config: RunnableConfig | None = None) -> TypeBaseModel:
        return self.bound.get_output_schema(config)

    @property
    def config_specs(self) -> list[ConfigurableFieldSpec]:
        return self.bound.config_specs

    def get_graph(self, config: RunnableConfig | None = None) -> Graph:
        return self.bound.get_graph(config)

    # -- where we stand --------------------------------------------------------------

    @property
    def budget(self) -> Budget:
        """The limits enforced."""
        return self.handler.budget

    @property
    def usage(self) -> Usage:
        """Usage of every settled model call so far."""
        return self.handler.usage

    @property
    def spent(self) -> Cost:
        """Cost of every settled model call so far."""
        return self.handler.spent

    @property
    def remaining(self) -> Cost | None:
        """Money left for new calls, or None without a cost limit."""
        return self.handler.remaining

    @property
    def remaining_tokens(self) -> int | None:
        """Tokens left for new calls, or None without a token limit."""
        return self.handler.remaining_tokens

    def by_model(self) -> dict[str, UsageTotals]:
        """Usage, cost and calls per model."""
        return self.handler.by_model()

    def reset(self) -> None:
        """Start the budget over: forget all spending so far (the ledger keeps its own)."""
        self.handler.reset()

    def close(self) -> None:
        """Stop renewing the ledger leases of calls still in flight (no-op without one)."""
        self.handler.close()


_WITH_BUDGET_ARGS = (
    "runnable", "max_cost", "max_tokens", "catalog", "expected_output_tokens",
    "default_model", "estimator", "budget", "ledger", "scopes", "max_output_tokens",
)  # fmt: skip


def with_budget(
    runnable: Runnable[Input, Output] | Callable[[Input], Output],
    *,
    max_cost: Decimal | float | str | None = None,
    max_tokens: int | None = None,
    catalog: ModelCatalog | None = None,
    expected_output_tokens: int | None = None,
    default_model: str | None = None,
    estimator: TokenEstimator | None = None,
    budget: Budget | None = None,
    ledger: BudgetLedger | None = None,
    scopes: Sequence[str] = (),
    max_output_tokens: int | None = None,
    **unknown: Any,
) -> BudgetedRunnable[Input, Output]:
    """Wrap ``runnable`` so that all its model calls share one hard budget.

    The budget accumulates over every call of the returned Runnable (call
    ``.reset()`` to start over). It stops an agent before the model call that would
    overspend: that call raises :class:`~langchain_runtime.errors.BudgetExceededError`
    out of ``invoke`` and nothing is sent. A call's cost is reserved from its real
    input tokens and its output limit, and settled at the usage the provider reports.

    Over a chat model, each call is sent with ``max_tokens`` (or the provider's name
    for it) clamped to what is left. Inside anything else (an agent, a graph, a
    chain) a call cannot be changed: one with ``max_tokens`` reserves that, one
    without reserves the model's maximum output from the catalog (or
    ``expected_output_tokens`` when given, or when the maximum is unknown), and a
    stream that passes its reservation is stopped there. For agents,
    :class:`~langchain_runtime.BudgetMiddleware` clamps every call instead.

    Args:
        runnable: An agent, a LangGraph graph, a chain, a chat model (or a callable).
        max_cost: Most money (USD) all calls together may cost.
        max_tokens: Most tokens (input + output) all calls together may use.
        catalog: Prices (the bundled table by default).
        expected_output_tokens: Output reserved for a call that sets no ``max_tokens``
            (by default the model's maximum output, or 1024 when that is unknown).
        default_model: Model name for calls whose model cannot be discovered.
        estimator: Token counter (a default :class:`TokenEstimator`).
        budget: A ready :class:`~langchain_runtime.domain.Budget` instead of the above.
        ledger: A shared :class:`~langchain_runtime.cost.ledger.BudgetLedger` (budgets
            across runs, processes and machines).
        scopes: The ledger scopes every call reserves in, all at once or not at all
            (``["team:research", "user:42"]``); required with ``ledger``.
        max_output_tokens: Over a chat model, the most output one call may be
            clamped to (and hold), so that parallel calls share what is left instead
            of the first one taking it all.

    Returns:
        A :class:`BudgetedRunnable` exposing ``.usage``, ``.spent``, ``.remaining``
        and ``.handler``.

    Raises:
        ConfigurationError: ``scopes`` without ``ledger`` (or the reverse), a bad
            scope name; at call time, a cost limit (or a ledger) applies to a model
            whose price is unknown.
        LedgerUnavailableError: (at call time) the ledger cannot answer: the call is
            refused, never sent unmetered.

    Example:
        >>> from langchain_core.language_models import FakeListChatModel
        >>> from langchain_runtime.errors import BudgetExceededError
        >>> model = with_budget(FakeListChatModel(responses=["ok"]), max_tokens=30,
        ...                     expected_output_tokens=5)
        >>> model.invoke("hello").content
        'ok'
        >>> try:
        ...     model.invoke("a much longer question " * 10)
        ... except BudgetExceededError as exc:
        ...     print("refused; used", model.usage.total_tokens, "of", exc.limit)
        refused; used 9 of 30
    """
    if budget is not None and (
        max_cost is not None or max_tokens is not None or expected_output_tokens is not None
    ):
        raise ValueError("pass either budget= or max_cost/max_tokens/expected_output_tokens")
    refuse_unknown_arguments("with_budget", unknown, _WITH_BUDGET_ARGS)
    if budget is None:
        budget = budget_from_arguments(
            "with_budget",
            max_cost=max_cost,
            max_tokens=max_tokens,
            expected_output_tokens=expected_output_tokens,
        )
    handler = BudgetCallbackHandler(
        budget,
        catalog=catalog,
        estimator=estimator,
        default_model=default_model,
        ledger=ledger,
        scopes=scopes,
    )
    bound = coerce_to_runnable(runnable)
    if max_output_tokens is not None and (
        isinstance(max_output_tokens, bool) or max_output_tokens < 1
    ):
        raise ConfigurationError(
            f"with_budget: max_output_tokens must be >= 1, got {max_output_tokens!r}"
        )
    return BudgetedRunnable(bound=bound, handler=handler, max_output_tokens=max_output_tokens)
