"""``ScriptedChatModel``: replies from a script, tool calls included."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.base import LangSmithParams
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import ConfigDict, Field, PrivateAttr, field_validator

from langchain_runtime.testing._tokens import count_tokens, usage_metadata

__all__ = ["ScriptedChatModel"]


class ScriptedChatModel(BaseChatModel):
    """A chat model that answers with the next message of a script.

    For agents offline: script tool calls, then a final answer. It accepts
    ``bind_tools`` (the script decides which tools are called), reports
    ``usage_metadata`` like a provider (the scripted message's own, else counted
    on the prompt and the reply), and is priced as ``model_name``.

    Args:
        responses: The replies, in order (strings become plain ``AIMessage``).
        model_name: The model id reported and priced.
        cycle: Start the script over when it runs out (else it is an error).

    Example:
        >>> model = ScriptedChatModel(responses=["first", "second"])
        >>> model.invoke("hi").content, model.invoke("again").content
        ('first', 'second')
        >>> model.calls
        2
    """

    model_config = ConfigDict(populate_by_name=True)

    responses: list[AIMessage]
    model_name: str = Field(default="simulated", alias="model")
    cycle: bool = False

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
        params["ls_model_name"] = self.model_name
        return params

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedChatModel:
        """Accept tools; the script says which ones are called."""
        return self

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
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
        if message.usage_metadata is None:
            calls = sum(count_tokens(f"{c['name']}{c['args']}") for c in message.tool_calls)
            message.usage_metadata = usage_metadata(messages, message.text, calls)
        message.response_metadata = {**message.response_metadata, "model_name": self.model_name}
        return ChatResult(generations=[ChatGeneration(message=message)])
