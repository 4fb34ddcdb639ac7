"""A chat model's output limit: its name per provider, its value, and its ceiling.

Used to clamp a call's output limit to what a budget can still pay for
(``with_budget`` over a chat model, ``BudgetMiddleware``).
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import Runnable, RunnableBinding

from langchain_runtime.errors import BudgetExceededError

if TYPE_CHECKING:
    from langchain_core.messages import BaseMessage

    from langchain_runtime.cost.budget import BudgetEnforcer
    from langchain_runtime.cost.catalog import ModelCatalog
    from langchain_runtime.cost.tokens import TokenEstimator

#: Names providers give the output limit, in the order they are looked for on a model
#: (ChatOpenAI and ChatAnthropic ``max_tokens``, Google ``max_output_tokens``,
#: Ollama ``num_predict``, old Anthropic completions ``max_tokens_to_sample``).
OUTPUT_LIMIT_NAMES = (
    "max_tokens",
    "max_output_tokens",
    "max_completion_tokens",
    "num_predict",
    "max_tokens_to_sample",
)
_MODEL_ATTRS = ("model_name", "model", "model_id", "deployment_name", "azure_deployment")


def positive_int(value: Any) -> int | None:
    """``value`` if it is an int > 0 (not a bool), else None."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


def limit_in(params: Mapping[str, Any]) -> int | None:
    """The output limit set in ``params`` (call kwargs, model settings), if any."""
    for key in OUTPUT_LIMIT_NAMES:
        if (value := positive_int(params.get(key))) is not None:
            return value
    return None


def declared_limit(metadata: Mapping[str, Any]) -> int | None:
    """A limit set on the model itself: it reaches callbacks only as ``ls_max_tokens``."""
    return positive_int(metadata.get("ls_max_tokens"))


def unwrap_chat_model(runnable: Runnable[Any, Any]) -> tuple[BaseChatModel, dict[str, Any]] | None:
    """The chat model under ``runnable`` and the call kwargs bound around it.

    Sees through ``RunnableBinding`` layers (``bind``, ``bind_tools``,
    ``with_config``); the outermost binding of a kwarg wins. None when ``runnable``
    is not a (bound) chat model.
    """
    kwargs: dict[str, Any] = {}
    current: Any = runnable
    while isinstance(current, RunnableBinding):
        kwargs = {**current.kwargs, **kwargs}
        current = current.bound
    if isinstance(current, BaseChatModel):
        return current, kwargs
    return None


def limit_name(model: BaseChatModel) -> str:
    """The keyword ``model`` takes its per-call output limit as."""
    fields = type(model).model_fields
    for key in OUTPUT_LIMIT_NAMES:
        if key in fields:
            return key
    return "max_tokens"


def model_name(model: BaseChatModel) -> str | None:
    """The model id a chat model's calls are priced by, when it says."""
    for attr in _MODEL_ATTRS:
        value = getattr(model, attr, None)
        if isinstance(value, str) and value:
            return value
    return None


def own_limit(model: BaseChatModel) -> int | None:
    """The output limit set on the model object itself (e.g. ChatAnthropic's 64000)."""
    for key in OUTPUT_LIMIT_NAMES:
        if (value := positive_int(getattr(model, key, None))) is not None:
            return value
    return None


def max_output(model: BaseChatModel | None, name: str | None, catalog: ModelCatalog) -> int | None:
    """Most output tokens the model can produce: the catalog's, else its profile's."""
    info = catalog.find(name) if name is not None else None
    if info is not None and info.max_output_tokens is not None:
        return info.max_output_tokens
    profile = getattr(model, "profile", None) if model is not None else None
    return positive_int(profile.get("max_output_tokens")) if isinstance(profile, Mapping) else None


@dataclass(frozen=True)
class Ceiling:
    """The most output one call may be given, and where that number comes from."""

    tokens: int
    #: ``"call"`` (set for this call), ``"model"`` (set on the model), ``"max"`` (the
    #: model's maximum output) or ``"expected"`` (the budget's expected_output_tokens,
    #: for a model whose maximum is unknown).
    source: str


def ceiling(
    model: BaseChatModel,
    name: str | None,
    params: Mapping[str, Any],
    catalog: ModelCatalog,
    expected: int,
) -> Ceiling:
    """The output ceiling of one call: its own limit, never above the model's maximum."""
    most = max_output(model, name, catalog)
    for limit, source in ((limit_in(params), "call"), (own_limit(model), "model")):
        if limit is not None:
            return Ceiling(min(limit, most) if most is not None else limit, source)
    if most is not None:
        return Ceiling(most, "max")
    return Ceiling(max(expected, 1), "expected")


def count_input(
    estimator: TokenEstimator,
    messages: Sequence[BaseMessage],
    name: str | None,
    tools: Sequence[Any] | None,
) -> int:
    """Input tokens of a request as a reservation holds them (margin included)."""
    try:
        counted = estimator.count_messages(messages, name, tools or None)
    except Exception:  # never block a call because a message could not be counted
        counted = math.ceil(len(repr(messages)) / estimator.chars_per_token)
    return estimator.reservation_tokens(counted, name)


def token_text(token: str | list[str | dict[str, Any]]) -> str:
    """The text of a streamed token (a string, or content blocks as Anthropic streams)."""
    if isinstance(token, str):
        return token
    parts: list[str] = []
    for block in token:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, Mapping):
            for key in ("text", "thinking", "partial_json"):
                value = block.get(key)
                if isinstance(value, str):
                    parts.append(value)
    return "".join(parts)


def explained_refusal(exc: BudgetExceededError, reserved: int, source: str) -> BudgetExceededError:
    why = (
        f"the model's maximum output ({reserved} tokens)"
        if source == "max"
        else f"expected_output_tokens ({reserved} tokens)"
    )
    hint = (
        f"{exc} -- the call sets no max_tokens, so its output was reserved at {why}. "
        "Set max_tokens on the model, or build the agent with "
        "langchain_runtime.BudgetMiddleware, which clamps each call to what is left."
    )
    return BudgetExceededError(hint, limit=exc.limit, spent=exc.spent, task_id=exc.task_id)


def profile_max_output(provider: str | None, model: str | None) -> int | None:
    """The maximum output in the model profiles of a loaded partner package.

    A callback sees only the model's name and provider (``ls_provider``), not the
    model object: the profile is read from ``langchain_<provider>``'s bundled
    profile data, when that package is already imported (never imported here).
    """
    if not provider or not model:
        return None
    module = sys.modules.get(f"langchain_{provider}.data._profiles")
    profiles = getattr(module, "_PROFILES", None)
    entry = profiles.get(model) if isinstance(profiles, Mapping) else None
    return positive_int(entry.get("max_output_tokens")) if isinstance(entry, Mapping) else None


def output_reservation(
    limit: int | None, model: str | None, enforcer: BudgetEnforcer, provider: str | None = None
) -> tuple[int, str]:
    """Output tokens a callback reserves for a call, and why (see :class:`Ceiling`).

    The call's own ``limit`` when it has one (``"call"``); else the budget's
    ``expected_output_tokens`` when it was set explicitly (``"expected"``, never above
    the model's maximum); else the model's maximum output from the catalog or its
    profile (``"max"``), so that nothing the model can answer is left unreserved;
    else, for a model whose maximum is unknown, the default ``expected_output_tokens``.
    """
    if limit is not None:
        return limit, "call"
    budget = enforcer.budget
    info = enforcer.calculator.catalog.find(model) if model is not None else None
    most = info.max_output_tokens if info is not None else None
    if most is None:
        most = profile_max_output(provider, model)
    if "expected_output_tokens" in budget.model_fields_set:
        expected = budget.expected_output_tokens
        return (min(expected, most) if most is not None else expected), "expected"
    if most is not None:
        return most, "max"
    return budget.expected_output_tokens, "expected"


def stream_stopped(
    model: str | None, produced: int, limit: int, enforcer: BudgetEnforcer, task_id: str | None
) -> BudgetExceededError:
    """The error that stops a stream at its reservation."""
    budget = enforcer.budget
    return BudgetExceededError(
        f"Stream stopped at its reservation: a call to {model or 'an unknown model'} "
        f"produced {produced} output tokens, {limit} were reserved. Set max_tokens on the "
        "model (or use BudgetMiddleware in an agent) so that the provider stops there itself.",
        limit=budget.max_cost if budget.max_cost is not None else budget.max_tokens,
        spent=enforcer.spent.amount,
        task_id=task_id,
    )


def output_tokens(estimator: TokenEstimator, text: str, answer: Any, model: str | None) -> int:
    """Output tokens of an answer: its ``text`` plus the tool calls of ``answer``.

    ``answer`` is an ``AIMessage`` or a generation holding one (anything else adds
    no tool calls).
    """
    total = estimator.count_text(text, model) if text else 0
    message = getattr(answer, "message", answer)
    for call in getattr(message, "tool_calls", None) or ():
        args = json.dumps(call.get("args") or {}, ensure_ascii=False)
        total += estimator.count_text(f"{call.get('name', '')}{args}", model)
    return total
