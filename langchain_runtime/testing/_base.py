"""What both test models share: LangChain's standard parameters, and nothing unknown."""

from __future__ import annotations

from typing import Any

from langchain_core.language_models import BaseChatModel
from pydantic import ConfigDict, Field, ValidationError

from langchain_runtime._fields import unknown_fields_error


class OfflineChatModel(BaseChatModel):
    """A chat model for tests that refuses unknown parameters.

    A typo (``SimulatedChatModel(max_token=5)``) is a ``ConfigurationError`` naming
    the closest parameter, never a model that silently ignores it. LangChain's
    standard parameters are accepted: ``stop`` cuts the reply at the first stop
    sequence, ``streaming=True`` makes ``invoke`` stream, ``temperature`` is
    reported to tracing (the replies do not depend on it), and ``timeout`` and
    ``max_retries`` are accepted for compatibility (nothing waits on a network).
    A call's own ``model=`` is the model it reports and is priced as.
    """

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    model_name: str = Field(default="simulated", alias="model")
    temperature: float | None = None
    stop: list[str] | None = None
    timeout: float | None = Field(default=None, ge=0)
    max_retries: int = Field(default=0, ge=0)
    streaming: bool = False

    def __init__(self, **kwargs: Any) -> None:
        try:
            super().__init__(**kwargs)
        except ValidationError as exc:
            error = unknown_fields_error(type(self), exc)
            if error is None:
                raise
            raise error from None

    def _model(self, kwargs: dict[str, Any]) -> str:
        """The model a call is made as: its own ``model=``, else ``model_name``."""
        override = kwargs.get("model")
        return override if isinstance(override, str) and override else self.model_name

    def _cut_at_stop(self, text: str, stop: list[str] | None) -> str:
        """``text`` up to the first of the call's (else the model's) stop sequences."""
        end = len(text)
        for sequence in (stop if stop is not None else self.stop) or ():
            found = text.find(sequence) if sequence else -1
            if 0 <= found < end:
                end = found
        return text[:end]
