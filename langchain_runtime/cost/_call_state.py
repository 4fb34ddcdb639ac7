"""What the budget handler keeps about one model call, and the usage fixes it applies."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from uuid import UUID

from langchain_runtime.domain import Usage

if TYPE_CHECKING:
    from langchain_core.messages import BaseMessage

    from langchain_runtime.cost.budget import BudgetEnforcer
    from langchain_runtime.cost.tokens import TokenEstimator

#: How far a nearby encoding's count of English text may be from the model's own
#: (cl100k for o200k: a few percent): a stream told its limit is cut only past it by this.
ENGLISH_COUNT_MARGIN = 1.1

__all__ = [
    "CallBook",
    "CallState",
    "corrected_usage",
    "count_margin",
    "held_usage",
    "request_cache_ttls",
    "sent_unanswered",
]

# Transport errors by class name (httpx, httpcore, aiohttp, requests and the provider
# SDKs that wrap them), so no client library needs importing to recognise them.
#: The connection was never made (or never got from the pool): nothing was sent.
_NOT_SENT = frozenset({
    "ConnectError", "ConnectTimeout", "PoolTimeout", "ClientConnectorError",
    "LocalProtocolError", "UnsupportedProtocol", "ProxyError", "InvalidURL",
})  # fmt: skip
#: The request may have gone out and no answer came back.
_UNANSWERED = frozenset({
    "APITimeoutError", "APIConnectionError", "ReadTimeout", "ReadError", "WriteTimeout",
    "WriteError", "RemoteProtocolError", "ServerDisconnectedError", "ServerTimeoutError",
    "ClientPayloadError", "ChunkedEncodingError",
})  # fmt: skip


class CallState:
    __slots__ = (
        "ascii_produced", "cache_ttls", "input_tokens", "key", "largest_piece", "margin", "model",
        "output_limit", "pieces", "produced", "run_id", "scope", "soft", "streamed", "task_id",
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
        self.largest_piece = 0  # most output tokens one streamed piece held
        self.ascii_produced = 0  # the part of ``produced`` counted on ASCII-only pieces
        #: 1.0 when the count reproduces the model's tokenizer, else the factor an
        #: English count may be off by (see BudgetCallbackHandler.on_llm_new_token)
        self.margin = 1.0
        #: The budget key of this call: unique per call, whatever run_id the caller reuses.
        self.key = ""
        self.run_id: Any = None

    def passed_hold(self) -> bool:
        """Whether a stream must stop here to keep its output within the hold.

        Told no limit (``soft``), the model goes on: stop before the next piece, as
        large as the largest so far, would pass the hold. Told its limit, the model
        should stop there itself: stop only on proof that it did not -- more pieces
        than tokens (each holds one or more), or, since one SSE chunk may hold many
        tokens, more English tokens than the limit by a count that is exact or within
        ``margin`` (other scripts' counts can be several times the provider's).
        """
        limit = self.output_limit
        if self.soft:
            return max(self.produced, self.pieces) + max(self.largest_piece, 1) > limit
        return self.pieces > limit or self.ascii_produced > limit * self.margin
        #: The ``ttl`` of every ``cache_control`` marker in the request ("5m" by default).
        self.cache_ttls: frozenset[str] = frozenset()


def count_margin(estimator: TokenEstimator, model: str | None) -> float:
    """1.0 when the count reproduces ``model``'s tokenizer, else how far it may be off."""
    margin = estimator.input_margin(model)
    if margin != 1.0:
        return margin
    return 1.0 if estimator.method(model).startswith("tiktoken:") else ENGLISH_COUNT_MARGIN


class CallBook:
    """The calls a budget handler has in flight, each under a budget key of its own.

    LangChain names a call by its run id, which a caller may reuse (``config=
    {"run_id": ...}``): every call still gets its own key (the run id the first
    time, ``<run id>#<n>`` after), so a reused run id never replaces another call's
    hold or settled record. Calls of one run id end in the order they started.
    """

    def __init__(self, enforcer: BudgetEnforcer) -> None:
        self._enforcer = enforcer
        self._lock = threading.Lock()
        self._calls: dict[str, CallState] = {}
        self._by_run: dict[UUID, list[str]] = {}
        self._scopes: dict[str, set[str]] = {}

    def new_key(self, run_id: UUID, *, register: bool = True) -> str:
        """A key no call in flight, hold or settled record uses yet."""
        base = str(run_id)
        with self._lock:
            keys = self._by_run.get(run_id, [])
            key, n = base, 0
            while (
                key in keys
                or key in self._calls
                or self._enforcer.tracker.get(key) is not None
                or self._enforcer.reservation(key) is not None
            ):
                n += 1
                key = f"{base}#{n}"
            if register:
                self._by_run.setdefault(run_id, []).append(key)
            return key

    def forget(self, run_id: UUID, key: str) -> None:
        """Drop a key taken by :meth:`new_key` for a call that did not start."""
        with self._lock:
            self._unlink(run_id, key)

    def _unlink(self, run_id: UUID, key: str) -> None:
        keys = self._by_run.get(run_id)
        if keys is not None and key in keys:
            keys.remove(key)
            if not keys:
                del self._by_run[run_id]

    def add(self, call: CallState) -> None:
        with self._lock:
            self._calls[call.key] = call
            run_keys = self._by_run.setdefault(call.run_id, [])
            if call.key not in run_keys:
                run_keys.append(call.key)
            if call.scope is not None:
                self._scopes.setdefault(call.scope, set()).add(call.key)

    def current(self, run_id: UUID) -> CallState | None:
        """The oldest call in flight under ``run_id``."""
        keys = self._by_run.get(run_id)
        return self._calls.get(keys[0]) if keys else None

    def pop(self, run_id: UUID) -> CallState | None:
        """Remove and return the oldest call in flight under ``run_id``."""
        with self._lock:
            keys = self._by_run.get(run_id)
            if not keys:
                return None
            call = self._calls.pop(keys[0], None)
            self._unlink(run_id, keys[0])
            if call is not None and call.scope is not None:
                self._scopes.get(call.scope, set()).discard(call.key)
            return call

    def take_pending(self, scope: str | None) -> list[CallState]:
        """Remove and return the calls in flight (under ``scope``, or all)."""
        with self._lock:
            if scope is None:
                keys = list(self._calls)
                self._scopes.clear()
            else:
                keys = list(self._scopes.pop(scope, ()))
            calls = [c for c in (self._calls.pop(k, None) for k in keys) if c is not None]
            for call in calls:
                self._unlink(call.run_id, call.key)
        return calls

    def clear(self) -> None:
        with self._lock:
            self._calls.clear()
            self._by_run.clear()
            self._scopes.clear()


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


def sent_unanswered(error: BaseException) -> bool:
    """Whether a failed call may have reached the provider and got no answer back.

    A read timeout or a dropped connection after the request went out: the provider
    may still finish the call and bill it up to the output limit it was given, so it
    costs its hold (like a cancelled call). An answer with an HTTP error status, a
    connection that was never made, or any other error is not such a call.

    Example:
        >>> sent_unanswered(TimeoutError("read timed out")), sent_unanswered(ValueError())
        (True, False)
    """
    seen: set[int] = set()
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and id(current) not in seen and len(chain) < 16:
        seen.add(id(current))
        chain.append(current)
        current = current.__cause__ or current.__context__
    unanswered = False
    for exc in chain:
        name = type(exc).__name__
        status = getattr(exc, "status_code", None)
        if isinstance(status, int) or name in _NOT_SENT or isinstance(exc, ConnectionRefusedError):
            return False  # the provider answered (with an error), or was never reached
        if name in _UNANSWERED or isinstance(exc, (TimeoutError, ConnectionError)):
            unanswered = True
    return unanswered


def held_usage(call: CallState, enforcer: BudgetEnforcer) -> Usage:
    """What a call that may be billed up to its hold costs: the hold, estimated."""
    held = enforcer.reservation(call.key)
    return Usage(
        input_tokens=held.input_tokens if held else call.input_tokens,
        output_tokens=max(held.output_tokens if held else call.output_limit, call.produced),
        estimated=True,
    )
