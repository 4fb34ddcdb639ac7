"""``ContextCompactor``: keeps a task's routed variables inside its context budget.

The budget (``ContextPolicy.max_tokens``) is over the sum of the variables' tokens,
counted with :class:`~langchain_runtime.cost.tokens.TokenEstimator` for the task's
model: a string counts as text, a list of chat messages as those messages in a chat
request (without the request's reply priming), anything else as its ``str()`` (a
single message as its text). Every strategy is deterministic: the same variables,
policy and model (and, for ``summarize``, the same summaries) give the same result.
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.runnables import RunnableConfig, ensure_config

from langchain_runtime.cost.tokens import TokenEstimator
from langchain_runtime.domain import ContextPolicy, Usage
from langchain_runtime.errors import ConfigurationError, ContextTooLargeError

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

__all__ = ["CompactionResult", "ContextCompactor", "VariableCompaction"]

logger = logging.getLogger(__name__)

#: Put where text was cut; ``{removed}`` is the number of tokens cut away.
DEFAULT_MARKER = "[... {removed} tokens truncated ...]"
#: Opens the message that replaces a summarized conversation.
SUMMARY_PREFIX = "Summary of the earlier conversation:\n"
#: The summarizer's instructions; ``{max_tokens}`` and ``{max_words}`` are filled in.
SUMMARY_INSTRUCTIONS = (
    "Summarize the content below; another model will use your summary as its context. "
    "Keep the facts, names, numbers and decisions, drop everything else. Answer with the "
    "summary only, in at most {max_tokens} tokens (about {max_words} words)."
)

Kind = Literal["text", "messages", "other"]
Action = Literal["kept", "truncated", "trimmed", "summarized"]


@dataclass(frozen=True)
class VariableCompaction:
    """What compaction did to one variable.

    Attributes:
        name: The variable.
        kind: ``text`` (a string), ``messages`` (a list of chat messages) or ``other``.
        tokens_before: Its tokens as routed.
        tokens_after: Its tokens as it will be sent.
        action: ``kept``, ``truncated``, ``trimmed`` (keep_last_n) or ``summarized``.
    """

    name: str
    kind: Kind
    tokens_before: int
    tokens_after: int
    action: Action


@dataclass(frozen=True)
class CompactionResult:
    """The variables a task will receive, and what compaction did to get them.

    Attributes:
        variables: The compacted variables, in the order they were given.
        strategy: The policy's strategy.
        tokens_before: Tokens of all variables as routed.
        tokens_after: Tokens of all variables as compacted (within ``max_tokens``).
        max_tokens: The policy's limit, or None.
        details: One entry per variable, sorted by name.
        summarizer_usage: Usage of the summarizer calls (zero when none was made),
            from their ``usage_metadata``; ``estimated`` when a reply had none.
        summarizer_calls: How many summarizer calls were made.
    """

    variables: dict[str, Any]
    strategy: str
    tokens_before: int
    tokens_after: int
    max_tokens: int | None
    details: tuple[VariableCompaction, ...] = ()
    summarizer_usage: Usage = field(default_factory=Usage)
    summarizer_calls: int = 0

    @property
    def changed(self) -> bool:
        """True when any variable was cut, trimmed or summarized."""
        return any(d.action != "kept" for d in self.details)

    def as_event_data(self) -> dict[str, Any]:
        """A JSON-friendly summary (no variable values), e.g. for a run event."""
        return {
            "strategy": self.strategy,
            "tokens_before": self.tokens_before,
            "tokens_after": self.tokens_after,
            "max_tokens": self.max_tokens,
            "changed": self.changed,
            "variables": {
                d.name: {
                    "action": d.action,
                    "tokens_before": d.tokens_before,
                    "tokens_after": d.tokens_after,
                }
                for d in self.details
            },
            "summarizer_calls": self.summarizer_calls,
            "summarizer_usage": self.summarizer_usage.model_dump(),
        }


@dataclass(frozen=True)
class _Var:
    name: str
    value: Any
    kind: Kind
    tokens: int


@dataclass(frozen=True)
class _SummaryRequest:
    variable: str
    messages: list[BaseMessage]
    max_tokens: int


class ContextCompactor:
    """Applies a :class:`~langchain_runtime.domain.ContextPolicy` to routed variables.

    Strategies:

    * ``none``: nothing changes; over ``max_tokens`` is an error.
    * ``truncate``: each variable is cut to ``truncate_to`` tokens; then, if the total
      is still over ``max_tokens``, the largest variables are cut to a common level
      (ties broken by name) so that it fits. Text keeps its head or tail
      (``policy.keep``) and shows a marker saying how many tokens were cut; the marker
      is counted (when even the marker does not fit, the text is cut without one).
      A message list loses whole messages from the other end and its boundary
      message is cut; system messages are never cut.
    * ``keep_last_n``: message lists keep their system messages and their last
      ``keep_last_n`` other messages; other variables are untouched.
    * ``summarize``: when over ``max_tokens``, the largest variables are replaced by
      summaries written by a chat model, each asked for at most the tokens it can
      have (a message list keeps its system messages and gets the summary as one
      human message). A summary that is still too long is cut.

    Tool results whose tool call was dropped are dropped too, so a provider never
    sees a tool message without its call. When the result still does not fit,
    :class:`~langchain_runtime.errors.ContextTooLargeError` is raised; for
    ``summarize``, before any summarizer call when the summaries cannot fit.

    Args:
        estimator: Counts tokens; a default :class:`TokenEstimator` if omitted.
        marker: Marker for cut text; ``{removed}`` is replaced by the tokens cut.
        min_summary_tokens: ``summarize`` picks more variables until each summary
            can have at least this many tokens (or every variable is picked).
        summary_instructions: The summarizer's system prompt (see
            ``SUMMARY_INSTRUCTIONS``).

    Example:
        >>> from langchain_runtime.domain import ContextPolicy
        >>> policy = ContextPolicy(max_tokens=12, strategy="truncate")
        >>> result = ContextCompactor().compact({"notes": " ".join(["word"] * 40)}, policy)
        >>> print(result.variables["notes"])
        word word word
        [... 37 tokens truncated ...]
        >>> result.tokens_before, result.tokens_after, result.changed
        (40, 12, True)
    """

    def __init__(
        self,
        estimator: TokenEstimator | None = None,
        *,
        marker: str = DEFAULT_MARKER,
        min_summary_tokens: int = 32,
        summary_instructions: str = SUMMARY_INSTRUCTIONS,
    ) -> None:
        if min_summary_tokens < 1:
            raise ValueError("min_summary_tokens must be >= 1")
        self.estimator = estimator or TokenEstimator()
        self.marker = marker
        self.min_summary_tokens = min_summary_tokens
        self.summary_instructions = summary_instructions

    # ------------------------------------------------------------------ public API
    def count(self, value: Any, model: str | None = None) -> int:
        """Tokens one variable's value takes, as compaction counts them."""
        if isinstance(value, str):
            return self.estimator.count_text(value, model)
        if _kind(value) == "messages":
            return sum(self._message_tokens(m, model) for m in value)
        return self.estimator.count_text(_render(value), model)

    def compact(
        self,
        variables: Mapping[str, Any],
        policy: ContextPolicy,
        *,
        model: str | None = None,
        task_id: str | None = None,
        summarizer: BaseChatModel | None = None,
        config: RunnableConfig | None = None,
    ) -> CompactionResult:
        """Compact ``variables`` by ``policy`` (summaries via ``summarizer.invoke``).

        Args:
            variables: The task's routed variables (name -> value).
            policy: The context policy to apply.
            model: The task's model id, choosing the tokenizer.
            task_id: Named in errors and logs.
            summarizer: The chat model that writes summaries (``summarize`` only).
            config: Config for the summarizer calls (callbacks, tags, metadata).

        Returns:
            The compacted variables and a report.

        Raises:
            ContextTooLargeError: The context cannot be made to fit ``max_tokens``.
            ConfigurationError: ``summarize`` must call a model but none was given.
        """
        steps = self._steps(variables, policy, model, task_id)
        step = _advance(steps, None)
        while isinstance(step, _SummaryRequest):
            chat = _require(summarizer, task_id)
            reply = chat.invoke(
                step.messages, _call_config(config, step), max_tokens=step.max_tokens
            )
            step = _advance(steps, reply)
        return step

    async def acompact(
        self,
        variables: Mapping[str, Any],
        policy: ContextPolicy,
        *,
        model: str | None = None,
        task_id: str | None = None,
        summarizer: BaseChatModel | None = None,
        config: RunnableConfig | None = None,
    ) -> CompactionResult:
        """Like :meth:`compact`, with summaries via ``await summarizer.ainvoke``."""
        steps = self._steps(variables, policy, model, task_id)
        step = _advance(steps, None)
        while isinstance(step, _SummaryRequest):
            chat = _require(summarizer, task_id)
            reply = await chat.ainvoke(
                step.messages, _call_config(config, step), max_tokens=step.max_tokens
            )
            step = _advance(steps, reply)
        return step

    # ------------------------------------------------------------------ the core
    def _steps(
        self,
        variables: Mapping[str, Any],
        policy: ContextPolicy,
        model: str | None,
        task_id: str | None,
    ) -> Generator[_SummaryRequest, BaseMessage, CompactionResult]:
        """The one implementation: yields summarizer requests, receives the replies."""
        vs = {n: _Var(n, v, _kind(v), self.count(v, model)) for n, v in variables.items()}
        before = sum(v.tokens for v in vs.values())
        limit = policy.max_tokens
        new: dict[str, Any] = {}
        action: Action = "kept"
        usage, calls = Usage(), 0
        if policy.strategy == "truncate":
            new, action = self._truncate(vs, policy, model), "truncated"
        elif policy.strategy == "keep_last_n":
            action = "trimmed"
            for v in vs.values():
                if v.kind == "messages":
                    trimmed = _keep_last(v.value, policy.keep_last_n)
                    if len(trimmed) != len(v.value):
                        new[v.name] = trimmed
        elif policy.strategy == "summarize" and limit is not None and before > limit:
            action = "summarized"
            for name, target in self._summary_targets(vs, limit, model, task_id, before):
                request = self._summary_request(vs[name], target, model)
                reply = yield request
                usage += self._reply_usage(reply, request, model)
                calls += 1
                new[name] = self._apply_summary(vs[name], reply, target, model)
        details = tuple(
            VariableCompaction(
                v.name,
                v.kind,
                v.tokens,
                self.count(new[v.name], model) if v.name in new else v.tokens,
                action if v.name in new else "kept",
            )
            for v in sorted(vs.values(), key=lambda v: v.name)
        )
        after = sum(d.tokens_after for d in details)
        if limit is not None and after > limit:
            hint = " (system messages are never cut)" if policy.strategy == "truncate" else ""
            raise _too_large(task_id, after, limit, policy.strategy, before, hint)
        result = CompactionResult(
            variables={n: new.get(n, v) for n, v in variables.items()},
            strategy=policy.strategy,
            tokens_before=before,
            tokens_after=after,
            max_tokens=limit,
            details=details,
            summarizer_usage=usage,
            summarizer_calls=calls,
        )
        if result.changed:
            logger.debug(
                "task %s: context compacted by %s from %d to %d tokens",
                task_id,
                policy.strategy,
                before,
                after,
            )
        return result

    # ------------------------------------------------------------------ truncate
    def _truncate(
        self, vs: Mapping[str, _Var], policy: ContextPolicy, model: str | None
    ) -> dict[str, Any]:
        cut: dict[str, Any] = {}
        sizes = {n: v.tokens for n, v in vs.items()}
        if policy.truncate_to is not None:
            for v in vs.values():
                if v.tokens > policy.truncate_to:
                    cut[v.name] = self._cut(v, policy.truncate_to, policy.keep, model)
                    sizes[v.name] = self.count(cut[v.name], model)
        limit = policy.max_tokens
        if limit is not None and sum(sizes.values()) > limit:
            floors = {n: self._floor(v, model) for n, v in vs.items()}
            for name, cap in _water_fill(sizes, floors, limit).items():
                if sizes[name] > cap:
                    # Cut the original, not a cut copy, so there is one honest marker.
                    cut[name] = self._cut(vs[name], cap, policy.keep, model)
        return cut

    def _floor(self, v: _Var, model: str | None) -> int:
        """The fewest tokens truncation can leave: a message list's system messages."""
        if v.kind != "messages":
            return 0
        return sum(self._message_tokens(m, model) for m in v.value if m.type == "system")

    def _cut(self, v: _Var, limit: int, keep: Literal["head", "tail"], model: str | None) -> Any:
        if v.kind == "messages":
            return self._cut_messages(v.value, limit, keep, model)
        return self._cut_text(_render(v.value), limit, keep, model)

    def _cut_text(
        self, text: str, limit: int, keep: Literal["head", "tail"], model: str | None
    ) -> str:
        """``text`` cut to at most ``limit`` tokens, marker included."""
        count = self.estimator.count_text
        total = count(text, model)
        if total <= limit:
            return text
        if limit <= 0:
            return ""
        budget = limit - count(self.marker.format(removed=total), model) - 1
        while budget >= 0:
            kept = self.estimator.truncate_text(text, budget, model, keep) if budget else ""
            marker = self.marker.format(removed=total - count(kept, model))
            marked = _join(kept, marker, keep)
            # Tokens can merge across the join; trust only a real count.
            excess = count(marked, model) - limit
            if excess <= 0:
                return marked
            budget -= excess
        return self.estimator.truncate_text(text, limit, model, keep)

    def _cut_messages(
        self,
        messages: Sequence[BaseMessage],
        limit: int,
        keep: Literal["head", "tail"],
        model: str | None,
    ) -> list[BaseMessage]:
        costs = [self._message_tokens(m, model) for m in messages]
        kept = {i for i, m in enumerate(messages) if m.type == "system"}
        used = sum(costs[i] for i in kept)
        others = [i for i in range(len(messages)) if i not in kept]
        replaced: dict[int, BaseMessage] = {}
        for i in others if keep == "head" else reversed(others):
            if used + costs[i] <= limit:
                kept.add(i)
                used += costs[i]
                continue
            partial = self._cut_message(messages[i], limit - used, keep, model)
            if partial is not None:
                kept.add(i)
                replaced[i] = partial
            break
        result = [replaced.get(i, m) for i, m in enumerate(messages) if i in kept]
        return _drop_orphan_tool_results(messages, result)

    def _cut_message(
        self, message: BaseMessage, room: int, keep: Literal["head", "tail"], model: str | None
    ) -> BaseMessage | None:
        if not isinstance(message.content, str) or getattr(message, "tool_calls", None):
            return None
        overhead = self._message_tokens(message.model_copy(update={"content": ""}), model)
        text = self._cut_text(message.content, room - overhead, keep, model)
        return message.model_copy(update={"content": text}) if text else None

    def _message_tokens(self, message: BaseMessage, model: str | None) -> int:
        # count_messages adds the reply priming once per request: count one message alone.
        count = self.estimator.count_messages
        return count([message], model) - count([], model)

    # ------------------------------------------------------------------ summarize
    def _summary_floor(self, v: _Var, model: str | None) -> int:
        if v.kind != "messages":
            return 0
        return self._floor(v, model) + self._message_tokens(HumanMessage(SUMMARY_PREFIX), model)

    def _summary_targets(
        self,
        vs: Mapping[str, _Var],
        limit: int,
        model: str | None,
        task_id: str | None,
        before: int,
    ) -> list[tuple[str, int]]:
        """Which variables to summarize (largest first), and each one's token target."""
        floors = {n: self._summary_floor(v, model) for n, v in vs.items()}
        candidates = sorted(
            (v for v in vs.values() if v.tokens > floors[v.name] + 1),
            key=lambda v: (-v.tokens, v.name),
        )
        chosen: list[_Var] = []
        available = limit - before
        for v in candidates:
            if chosen and available >= self.min_summary_tokens * len(chosen):
                break
            chosen.append(v)
            available += v.tokens - floors[v.name]
        if available < max(1, len(chosen)):
            smallest = limit - available + len(chosen)
            raise _too_large(
                task_id,
                smallest,
                limit,
                "summarize",
                before,
                " even with every variable summarized",
            )
        spare, weight = available - len(chosen), sum(v.tokens for v in chosen)
        shares = {v.name: 1 + spare * v.tokens // weight for v in chosen}
        left = available - sum(shares.values())
        for name in sorted(shares)[:left]:
            shares[name] += 1
        return [(v.name, shares[v.name]) for v in chosen]

    def _summary_request(self, v: _Var, share: int, model: str | None) -> _SummaryRequest:
        if v.kind == "messages":
            source = "\n".join(f"{m.type}: {m.text}" for m in v.value if m.type != "system")
        else:
            source = _render(v.value)
        instructions = self.summary_instructions.format(
            max_tokens=share, max_words=max(1, share * 3 // 4)
        )
        return _SummaryRequest(v.name, [SystemMessage(instructions), HumanMessage(source)], share)

    def _apply_summary(self, v: _Var, reply: BaseMessage, share: int, model: str | None) -> Any:
        summary = reply.text.strip()
        if v.kind != "messages":
            return self._cut_text(summary, share, "head", model)
        system = [m for m in v.value if m.type == "system"]
        room = self._summary_floor(v, model) + share - self._floor(v, model)
        room -= self._message_tokens(HumanMessage(""), model)
        return [
            *system,
            HumanMessage(self._cut_text(SUMMARY_PREFIX + summary, room, "head", model)),
        ]

    def _reply_usage(
        self, reply: BaseMessage, request: _SummaryRequest, model: str | None
    ) -> Usage:
        metadata = getattr(reply, "usage_metadata", None)
        if metadata:
            return Usage.from_usage_metadata(metadata)
        return Usage(
            input_tokens=self.estimator.count_messages(request.messages, model),
            output_tokens=self.estimator.count_text(reply.text, model),
            estimated=True,
        )


# ---------------------------------------------------------------------- helpers
def _kind(value: Any) -> Kind:
    if isinstance(value, str):
        return "text"
    if isinstance(value, (list, tuple)) and all(isinstance(m, BaseMessage) for m in value):
        return "messages"
    return "other"


def _render(value: Any) -> str:
    """The text a non-string, non-message-list value is sent as (a message: its text)."""
    return value.text if isinstance(value, BaseMessage) else str(value)


def _join(kept: str, marker: str, keep: Literal["head", "tail"]) -> str:
    if not kept:
        return marker
    return f"{kept}\n{marker}" if keep == "head" else f"{marker}\n{kept}"


def _water_fill(sizes: Mapping[str, int], floors: Mapping[str, int], limit: int) -> dict[str, int]:
    """Per-variable caps: the largest cut first, to one common level, ties by name."""

    def total(level: int) -> int:
        return sum(max(floors[n], min(s, level)) for n, s in sizes.items())

    lo, hi = 0, max(sizes.values(), default=0)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if total(mid) <= limit:
            lo = mid
        else:
            hi = mid - 1
    caps = {n: max(floors[n], min(s, lo)) for n, s in sizes.items()}
    spare = limit - sum(caps.values())
    for name in sorted(n for n in sizes if sizes[n] > caps[n])[: max(spare, 0)]:
        caps[name] += 1
    return caps


def _keep_last(messages: Sequence[BaseMessage], n: int) -> list[BaseMessage]:
    others = [i for i, m in enumerate(messages) if m.type != "system"]
    dropped = set(others[: max(len(others) - n, 0)])
    kept = [m for i, m in enumerate(messages) if i not in dropped]
    return _drop_orphan_tool_results(messages, kept)


def _drop_orphan_tool_results(
    original: Sequence[BaseMessage], kept: list[BaseMessage]
) -> list[BaseMessage]:
    """Drop tool results whose call was in ``original`` but is not in ``kept``."""

    def call_ids(messages: Sequence[BaseMessage]) -> set[str]:
        return {
            str(c.get("id")) for m in messages if isinstance(m, AIMessage) for c in m.tool_calls
        }

    lost = call_ids(original) - call_ids(kept)
    return [m for m in kept if not (isinstance(m, ToolMessage) and m.tool_call_id in lost)]


def _advance(
    steps: Generator[_SummaryRequest, BaseMessage, CompactionResult], reply: BaseMessage | None
) -> _SummaryRequest | CompactionResult:
    """The next summarizer request, or the result (only the core's own end is caught,
    never a ``StopIteration`` escaping a model call)."""
    try:
        return next(steps) if reply is None else steps.send(reply)
    except StopIteration as done:
        result: CompactionResult = done.value
        return result


def _require(summarizer: BaseChatModel | None, task_id: str | None) -> BaseChatModel:
    if summarizer is None:
        raise ConfigurationError(
            f"task {task_id!r}: context strategy 'summarize' must call a model, but no "
            "summarizer was given; pass summarizer=<chat model>"
        )
    return summarizer


def _call_config(config: RunnableConfig | None, request: _SummaryRequest) -> RunnableConfig:
    """The caller's callbacks, tags and metadata, with a run of its own per summary."""
    cfg = ensure_config(config)
    cfg.pop("run_id", None)
    cfg["run_name"] = f"summarize:{request.variable}"
    cfg["tags"] = [*cfg.get("tags", []), "lcr:context-summary"]
    cfg["metadata"] = {**cfg.get("metadata", {}), "lcr_context_variable": request.variable}
    return cfg


def _too_large(
    task_id: str | None, tokens: int, limit: int, strategy: str, before: int, hint: str = ""
) -> ContextTooLargeError:
    who = f"task {task_id!r}" if task_id is not None else "context"
    return ContextTooLargeError(
        f"{who}: context of {tokens} tokens (routed: {before}) is over the limit of "
        f"{limit} tokens with strategy {strategy!r}{hint}",
        task_id=task_id,
        tokens=tokens,
        max_tokens=limit,
    )
