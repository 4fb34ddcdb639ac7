"""``SimulatedChatModel``: an offline, deterministic chat model."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models.base import LangSmithParams
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import Field

from langchain_runtime.testing._base import OfflineChatModel
from langchain_runtime.testing._tokens import usage_metadata

__all__ = ["SimulatedChatModel"]

# Common English words that are one token each in the cl100k and o200k encodings
# (with their leading space), so a simulated answer's length is exact.
_WORDS: tuple[str, ...] = tuple(
    [
        "the",
        "model",
        "data",
        "result",
        "task",
        "plan",
        "step",
        "review",
        "draft",
        "outline",
        "research",
        "source",
        "fact",
        "team",
        "cost",
        "time",
        "value",
        "point",
        "case",
        "part",
        "idea",
        "key",
        "note",
        "list",
        "test",
        "work",
        "line",
        "view",
        "form",
        "level",
        "order",
        "state",
        "group",
        "area",
        "rule",
        "need",
        "use",
        "make",
        "show",
        "find",
        "give",
        "take",
        "keep",
        "run",
        "build",
        "check",
        "read",
        "write",
        "start",
        "end",
        "first",
        "next",
        "last",
        "main",
        "new",
        "good",
        "clear",
        "simple",
        "small",
        "large",
        "high",
        "low",
        "long",
        "short",
        "open",
        "fast",
        "safe",
        "real",
        "same",
        "each",
        "other",
        "more",
        "most",
        "also",
        "then",
        "when",
        "where",
        "while",
        "with",
        "from",
        "into",
        "over",
        "under",
        "after",
        "before",
        "about",
    ]
)


class SimulatedChatModel(OfflineChatModel):
    """An offline, deterministic chat model for demos and tests.

    The answer derives from the prompt (same prompt, same answer), its usage is
    reported in ``usage_metadata`` like a real provider's (input counted on the
    prompt, output on the answer), ``max_tokens`` caps the answer, and
    ``latency`` simulates a slow provider (cancellable on async paths). A call's
    own ``model=`` (``model.invoke(msgs, model="gpt-4o")``) is the model it reports
    and is priced as.

    Args:
        model_name: The model id reported and priced (``"simulated"`` is in the
            bundled catalog).
        response_tokens: Tokens in an answer when ``max_tokens`` does not cap it.
        latency: Seconds each call takes.
        max_tokens: Most output tokens per call (also accepted per call).

    It also takes LangChain's standard parameters (``stop``, ``streaming``,
    ``temperature``, ``timeout``, ``max_retries``) and refuses unknown ones with a
    ``ConfigurationError`` naming the closest.

    Example:
        >>> model = SimulatedChatModel(response_tokens=5)
        >>> msg = model.invoke("Hello there")
        >>> msg.usage_metadata["output_tokens"]
        5
    """

    response_tokens: int = Field(default=48, ge=0)
    latency: float = Field(default=0.0, ge=0)
    max_tokens: int | None = Field(default=None, ge=0)

    @property
    def _llm_type(self) -> str:
        return "simulated-chat"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "response_tokens": self.response_tokens}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = "simulated"
        params["ls_model_name"] = self._model(kwargs)
        limit = kwargs.get("max_tokens", self.max_tokens)
        if limit is not None:
            params["ls_max_tokens"] = limit
        return params

    # ------------------------------------------------------------------ answer
    def _answer(
        self, messages: Sequence[BaseMessage], max_tokens: int | None, stop: list[str] | None
    ) -> str:
        prompt = "\n".join(f"{m.type}:{m.text}" for m in messages)
        n = self.response_tokens if max_tokens is None else min(self.response_tokens, max_tokens)
        seed = hashlib.sha256(prompt.encode()).digest()
        words = []
        for i in range(n):
            b = seed[i % len(seed)] ^ (i * 131 % 256)
            words.append(_WORDS[(b + i) % len(_WORDS)])
        return self._cut_at_stop(" ".join(words), stop)

    def _usage(self, messages: Sequence[BaseMessage], text: str) -> UsageMetadata:
        return usage_metadata(messages, text)

    def _result(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> ChatResult:
        text = self._answer(messages, kwargs.get("max_tokens", self.max_tokens), stop)
        msg = AIMessage(
            content=text,
            usage_metadata=self._usage(messages, text),
            response_metadata={"model_name": self._model(kwargs), "finish_reason": "stop"},
        )
        return ChatResult(
            generations=[ChatGeneration(message=msg)],
            llm_output={"model_name": self._model(kwargs)},
        )

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.latency:
            time.sleep(self.latency)
        return self._result(messages, stop, kwargs)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.latency:
            await asyncio.sleep(self.latency)
        return self._result(messages, stop, kwargs)

    def _chunks(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> list[ChatGenerationChunk]:
        text = self._answer(messages, kwargs.get("max_tokens", self.max_tokens), stop)
        words = text.split(" ") if text else []
        chunks = [
            ChatGenerationChunk(message=AIMessageChunk(content=w if i == 0 else " " + w))
            for i, w in enumerate(words)
        ]
        chunks.append(
            ChatGenerationChunk(
                message=AIMessageChunk(
                    content="",
                    usage_metadata=self._usage(messages, text),
                    response_metadata={
                        "model_name": self._model(kwargs),
                        "finish_reason": "stop",
                    },
                    chunk_position="last",
                )
            )
        )
        return chunks

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        if self.latency:
            time.sleep(self.latency)
        for chunk in self._chunks(messages, stop, kwargs):
            if run_manager is not None and chunk.message.content:
                run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        if self.latency:
            await asyncio.sleep(self.latency)
        for chunk in self._chunks(messages, stop, kwargs):
            if run_manager is not None and chunk.message.content:
                await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk
