"""What the budget handler keeps about one model call, and the usage fixes it applies."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from langchain_runtime.domain import Usage

if TYPE_CHECKING:
    from langchain_core.messages import BaseMessage

__all__ = ["CallState", "corrected_usage", "request_cache_ttls"]


class CallState:
    __slots__ = (
        "cache_ttls", "input_tokens", "model", "output_limit", "pieces", "produced", "scope",
        "soft", "streamed", "task_id",
    )  # fmt: skip

    def __init__(
        self,
        model: str | None,
        task_id: str | None,
        input_tokens: int,
        scope: str | None,
        output_limit: int,
        soft: bool,
    ) -> None:
        self.model = model
        self.task_id = task_id
        self.input_tokens = input_tokens
        self.scope = scope
        self.output_limit = output_limit  # output reserved: a stream passing it is stopped
        # True when the model was told no limit and may answer longer than reserved
        self.soft = soft
        self.produced = 0  # output tokens streamed so far, as counted here
        self.pieces = 0  # non-empty streamed pieces so far: each holds one token or more
        self.streamed = False
        #: The ``ttl`` of every ``cache_control`` marker in the request ("5m" by default).
        self.cache_ttls: frozenset[str] = frozenset()


def _cache_ttls(found: set[str], value: Any, depth: int = 0) -> None:
    """Collect the TTLs of the ``cache_control`` markers anywhere in ``value``."""
    if depth > 6:
        return
    if isinstance(value, Mapping):
        marker = value.get("cache_control")
        if isinstance(marker, Mapping):
            ttl = marker.get("ttl")
            found.add(ttl if isinstance(ttl, str) and ttl else "5m")
        for key, item in value.items():
            if key != "cache_control" and isinstance(item, (Mapping, list, tuple)):
                _cache_ttls(found, item, depth + 1)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _cache_ttls(found, item, depth + 1)


def request_cache_ttls(
    messages: Sequence[BaseMessage], params: Mapping[str, Any]
) -> frozenset[str]:
    """The TTLs a request's ``cache_control`` markers ask for (messages, tools, kwargs)."""
    found: set[str] = set()
    for message in messages:
        if isinstance(message.content, list):
            _cache_ttls(found, message.content)
        _cache_ttls(found, message.additional_kwargs)
    _cache_ttls(found, {k: params[k] for k in ("cache_control", "tools", "system") if k in params})
    return frozenset(found)


def corrected_usage(usage: Usage, call: CallState | None) -> Usage:
    """Fill in what streamed Anthropic usage is known to lose (never under-count).

    - ``input_tokens=0`` while the request's input was counted (langchain issue
      #35509: ``message_delta`` carries only output tokens): the counted input,
      estimated.
    - cache writes without the 5-minute/1-hour split (langchain-anthropic drops
      ``message_start``'s breakdown when streaming): 1-hour writes when every
      ``cache_control`` of the request asked for ``ttl: "1h"``; when some asked for
      5 minutes, 1-hour too (the upper bound), estimated.
    """
    if call is None:
        return usage
    fields = usage.model_dump()
    if usage.input_tokens == 0 and call.input_tokens > 0:
        fields.update(input_tokens=call.input_tokens, estimated=True)
    if (
        call.streamed
        and usage.cache_creation_tokens > 0
        and usage.cache_creation_1h_tokens == 0
        and "1h" in call.cache_ttls
    ):
        fields["cache_creation_1h_tokens"] = usage.cache_creation_tokens
        if call.cache_ttls != {"1h"}:
            fields["estimated"] = True
    if fields == usage.model_dump():
        return usage
    fields["total_tokens"] = fields["input_tokens"] + fields["output_tokens"]
    return Usage(**fields)
