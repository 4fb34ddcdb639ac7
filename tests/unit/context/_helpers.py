"""Independent token counts for the compaction tests (straight from TokenEstimator)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, LLMResult

from langchain_runtime.cost.tokens import TokenEstimator

EST = TokenEstimator()


def tokens(value: Any) -> int:
    """A variable's tokens: text as text, a message list as chat messages, else str()."""
    if isinstance(value, str):
        return EST.count_text(value)
    if isinstance(value, list) and all(isinstance(m, BaseMessage) for m in value):
        return EST.count_messages(value) - EST.count_messages([])
    return EST.count_text(str(value))


def total(variables: Mapping[str, Any]) -> int:
    return sum(tokens(v) for v in variables.values())


def words(n: int, word: str = "word") -> str:
    """Text of exactly ``n`` cl100k tokens."""
    return " ".join([word] * n)


class Recorder(BaseCallbackHandler):
    """Records what LangChain reports about chat model calls (as a budget handler sees it)."""

    def __init__(self) -> None:
        self.starts: list[dict[str, Any]] = []
        self.usages: list[dict[str, Any]] = []

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        **kwargs: Any,
    ) -> None:
        self.starts.append({"messages": messages[0], **kwargs})

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        generation = response.generations[0][0]
        assert isinstance(generation, ChatGeneration)
        assert isinstance(generation.message, AIMessage)
        self.usages.append(dict(generation.message.usage_metadata or {}))
