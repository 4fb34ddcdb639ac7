"""``ScriptedChatModel``: replies from a script, tool calls included."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models.base import LangSmithParams
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import Field, PrivateAttr, field_validator

from langchain_runtime.testing._base import OfflineChatModel
from langchain_runtime.testing._tokens import count_tokens, usage_metadata

__all__ = ["ScriptedChatModel"]


class ScriptedChatModel(OfflineChatModel):
    """A chat model that answers with the next message of a script.

    For agents offline: script tool calls, then a final answer. It accepts
    ``bind_tools`` (the script decides which tools are called), reports
    ``usage_metadata`` like a provider (the scripted message's own, else counted
    on the prompt and the reply), and is priced as ``model_name``, or as the
    ``model=`` given to one call (``model.invoke(msgs, model="gpt-4o")``). It
    streams too: the reply word by word, its tool calls as tool-call chunks, the
    usage on the last chunk.

    Args:
        responses: The replies, in order (strings become plain ``AIMessage``).
        model_name: The model id reported and priced.
        cycle: Start the script over when it runs out (else it is an error).
        max_tokens: Reported to callbacks, so budgets reserve it; a scripted reply
            is returned whole.

    It also takes LangChain's standard parameters (``stop`` cuts a reply's text,
    ``streaming``, ``temperature``, ``timeout``, ``max_retries``) and refuses
    unknown ones with a ``ConfigurationError`` naming the closest.

    Example:
        >>> model = ScriptedChatModel(responses=["first", "second"])
        >>> model.invoke("hi").content, model.invoke("again").content
        ('first', 'second')
        >>> model.calls
        2
        >>> [c.content for c in ScriptedChatModel(responses=["a b"]).stream("hi")]
        ['a', ' b', '']
    """

    responses: list[AIMessage]
    cycle: bool = False
    #: Reported to callbacks (budgets reserve it); a scripted reply is returned whole.
    max_tokens: int | None = Field(default=None, ge=0)

    @field_validator("responses", mode="before")
    @classmethod
    def _text_to_message(cls, value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return [AIMessage(content=v) if isinstance(v, str) else v for v in value]
        return value

    _next: int = PrivateAttr(default=0)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @property
    def _llm_type(self) -> str:
        return "scripted-chat"

    @property
    def calls(self) -> int:
        """How many replies the model has given."""
        return self._next

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = "scripted"
        params["ls_model_name"] = self._model(kwargs)
        return params

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedChatModel:
        """Accept tools; the script says which ones are called."""
        return self

    def _reply(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> AIMessage:
        """The next scripted reply (cut at a stop sequence), with usage and its model."""
        with self._lock:
            index = self._next
            if index >= len(self.responses) and not self.cycle:
                raise IndexError(
                    f"ScriptedChatModel has no reply left: the script has "
                    f"{len(self.responses)} and call {index + 1} was made"
                )
            self._next += 1
        reply = self.responses[index % len(self.responses)]
        message = reply.model_copy()
        if isinstance(message.content, str) and (stop or self.stop):
            message.content = self._cut_at_stop(message.content, stop)
        if message.usage_metadata is None:
            calls = sum(count_tokens(f"{c['name']}{c['args']}") for c in message.tool_calls)
            message.usage_metadata = usage_metadata(messages, message.text, calls)
        message.response_metadata = {
            **message.response_metadata,
            "model_name": self._model(kwargs),
        }
        return message

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self._reply(messages, stop, kwargs))])

    def _chunks(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> list[ChatGenerationChunk]:
        """The next reply as chunks: its words, its tool calls, then usage and metadata."""
        reply = self._reply(messages, stop, kwargs)
        text = reply.content if isinstance(reply.content, str) else reply.text
        pieces: list[AIMessageChunk] = [
            AIMessageChunk(content=word, id=reply.id)
            for word in re.findall(r"\s*\S+\s*$|\s*\S+", text)
        ]
        calls = [
            tool_call_chunk(name=c["name"], args=json.dumps(c["args"]), id=c["id"], index=i)
            for i, c in enumerate(reply.tool_calls)
        ]
        if calls:
            pieces.append(AIMessageChunk(content="", id=reply.id, tool_call_chunks=calls))
        pieces.append(
            AIMessageChunk(
                content="",
                id=reply.id,
                usage_metadata=reply.usage_metadata,
                response_metadata=reply.response_metadata,
                chunk_position="last",
            )
        )
        return [ChatGenerationChunk(message=piece) for piece in pieces]

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        for chunk in self._chunks(messages, stop, kwargs):
            if run_manager is not None and chunk.text:
                run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        for chunk in self._chunks(messages, stop, kwargs):
            if run_manager is not None and chunk.text:
                await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk
