"""Fake chat models for the cost tests: scripted answers with provider-like usage."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import PrivateAttr


def usage(inp: int, out: int, **details: Any) -> dict[str, Any]:
    """A LangChain ``usage_metadata`` dict."""
    md: dict[str, Any] = {"input_tokens": inp, "output_tokens": out, "total_tokens": inp + out}
    if "cache_read" in details:
        md["input_token_details"] = {"cache_read": details["cache_read"]}
    if "reasoning" in details:
        md["output_token_details"] = {"reasoning": details["reasoning"]}
    return md


class ScriptedChatModel(BaseChatModel):
    """Answers with ``responses`` in turn (cycling) and counts the calls it served.

    Streams the answer's text, then a last chunk carrying its ``usage_metadata``, as
    providers do. ``bind_tools`` returns the model itself.
    """

    responses: list[AIMessage]
    model_name: str | None = "gpt-4o-mini"
    fail_with: str | None = None
    _calls: int = PrivateAttr(default=0)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _seen: list[dict[str, Any]] = PrivateAttr(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "scripted-chat"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name} if self.model_name else {}

    @property
    def calls(self) -> int:
        """Calls that reached the model (i.e. would have been sent)."""
        return self._calls

    @property
    def seen_kwargs(self) -> list[dict[str, Any]]:
        return self._seen

    def _next(self, kwargs: dict[str, Any]) -> AIMessage:
        with self._lock:
            msg = self.responses[self._calls % len(self.responses)]
            self._calls += 1
            self._seen.append(kwargs)
        if self.fail_with:
            raise RuntimeError(self.fail_with)
        return msg

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        msg = self._next(kwargs)
        return ChatResult(
            generations=[ChatGeneration(message=msg.model_copy())],
            llm_output={"model_name": self.model_name},
        )

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        msg = self._next(kwargs)
        yield ChatGenerationChunk(message=AIMessageChunk(content=msg.text))
        yield ChatGenerationChunk(
            message=AIMessageChunk(
                content="", tool_call_chunks=[], usage_metadata=msg.usage_metadata
            )
        )

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedChatModel:  # type: ignore[override]
        return self


def answers(n: int, inp: int = 100, out: int = 20, text: str = "ok") -> list[AIMessage]:
    return [AIMessage(text, usage_metadata=usage(inp, out)) for _ in range(n)]  # type: ignore[arg-type]
