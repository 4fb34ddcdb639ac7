"""Reading the token usage a provider reported for a model call.

LangChain integrations put usage on ``AIMessage.usage_metadata``; each provider's
cached, cache-write and reasoning tokens land there in its own way:

==================================  =====================================================
Provider (integration)              Where the detail tokens are
==================================  =====================================================
OpenAI Chat Completions             ``input_token_details.cache_read``,
(langchain-openai)                  ``output_token_details.reasoning``
OpenAI Responses API                the same keys, from ``input_tokens_details`` /
(langchain-openai)                  ``output_tokens_details``
Anthropic (langchain-anthropic)     ``cache_read``; cache writes as ``cache_creation``,
                                    or, when the API sends the TTL breakdown, as
                                    ``ephemeral_5m_input_tokens`` and
                                    ``ephemeral_1h_input_tokens`` with ``cache_creation``
                                    set to 0
Google Gemini                       ``cache_read`` (cached content),
(langchain-google-genai)            ``output_token_details.reasoning`` (thinking)
==================================  =====================================================

In every case ``input_tokens`` already includes the cache tokens and ``output_tokens``
the reasoning tokens. :meth:`Usage.from_usage_metadata
<langchain_runtime.domain.Usage.from_usage_metadata>` reads all of these; the raw
usage dicts in ``llm_output`` (used when a message carries no ``usage_metadata``) are
read by :func:`usage_from_dict`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from langchain_runtime.domain import Usage

if TYPE_CHECKING:
    from langchain_core.outputs import LLMResult

__all__ = ["usage_from_dict", "usage_from_result"]


def _num(src: Any, key: str) -> int:
    value = src.get(key) if isinstance(src, Mapping) else None
    if isinstance(value, bool) or not isinstance(value, int):
        return 0
    return max(value, 0)


def _anthropic(data: Mapping[str, Any]) -> Usage:
    # Anthropic's input_tokens leaves out cache reads and writes.
    read = _num(data, "cache_read_input_tokens")
    write = _num(data, "cache_creation_input_tokens")
    breakdown = data.get("cache_creation")
    five_min = _num(breakdown, "ephemeral_5m_input_tokens")
    one_hour = _num(breakdown, "ephemeral_1h_input_tokens")
    write = max(write, five_min + one_hour)
    return Usage(
        input_tokens=_num(data, "input_tokens") + read + write,
        output_tokens=_num(data, "output_tokens"),
        cache_read_tokens=read,
        cache_creation_tokens=write,
        cache_creation_1h_tokens=one_hour,
    )


def usage_from_dict(data: Mapping[str, Any]) -> Usage | None:
    """Usage from a provider's raw usage dict, or None if the shape is unknown.

    Reads OpenAI Chat Completions (``prompt_tokens``...), OpenAI's Responses API
    (``input_tokens`` with ``input_tokens_details``), Anthropic (``input_tokens``
    without the cache tokens, plus ``cache_read_input_tokens``,
    ``cache_creation_input_tokens`` and the ``cache_creation`` TTL breakdown) and
    Gemini (``prompt_token_count``/``promptTokenCount``...).

    Example:
        >>> usage_from_dict({"input_tokens": 50, "output_tokens": 200,
        ...     "cache_read_input_tokens": 3000, "cache_creation_input_tokens": 2000,
        ...     "cache_creation": {"ephemeral_5m_input_tokens": 0,
        ...                        "ephemeral_1h_input_tokens": 2000}})
        Usage(input_tokens=5050, ..., cache_creation_1h_tokens=2000, ...)
    """
    if "prompt_tokens" in data or "completion_tokens" in data:
        return Usage(
            input_tokens=_num(data, "prompt_tokens"),
            output_tokens=_num(data, "completion_tokens"),
            total_tokens=_num(data, "total_tokens"),
            cache_read_tokens=_num(data.get("prompt_tokens_details"), "cached_tokens"),
            reasoning_tokens=_num(data.get("completion_tokens_details"), "reasoning_tokens"),
        )
    if "input_tokens_details" in data or "output_tokens_details" in data:
        # OpenAI's Responses API: input_tokens includes cached ones.
        details = data.get("output_tokens_details")
        return Usage(
            input_tokens=_num(data, "input_tokens"),
            output_tokens=_num(data, "output_tokens"),
            total_tokens=_num(data, "total_tokens"),
            cache_read_tokens=_num(data.get("input_tokens_details"), "cached_tokens"),
            reasoning_tokens=_num(details, "reasoning_tokens"),
        )
    if "input_tokens" in data or "output_tokens" in data:
        return _anthropic(data)
    gemini = _gemini_keys(data)
    if gemini is not None:
        prompt, candidates, thoughts, cached, tool_prompt = gemini
        return Usage(
            input_tokens=prompt + tool_prompt,
            output_tokens=candidates + thoughts,
            cache_read_tokens=cached,
            reasoning_tokens=thoughts,
        )
    return None


_GEMINI = (
    ("prompt_token_count", "promptTokenCount"),
    ("candidates_token_count", "candidatesTokenCount"),
    ("thoughts_token_count", "thoughtsTokenCount"),
    ("cached_content_token_count", "cachedContentTokenCount"),
    ("tool_use_prompt_token_count", "toolUsePromptTokenCount"),
)


def _gemini_keys(data: Mapping[str, Any]) -> tuple[int, int, int, int, int] | None:
    if not any(key in data for pair in _GEMINI for key in pair):
        return None
    # Gemini's prompt count includes cached content; its candidates leave out thoughts.
    a, b, c, d, e = (max(_num(data, snake), _num(data, camel)) for snake, camel in _GEMINI)
    return a, b, c, d, e


def usage_from_result(result: LLMResult | None) -> Usage | None:
    """The usage a provider reported in ``result``, or None if it reported none.

    Reads ``usage_metadata`` of the first generation of each prompt (streamed calls
    included; every candidate of one prompt carries the same usage), else the raw
    usage in ``llm_output``.

    Example:
        >>> from langchain_core.messages import AIMessage
        >>> from langchain_core.outputs import ChatGeneration, LLMResult
        >>> message = AIMessage("hi", usage_metadata={"input_tokens": 10,
        ...     "output_tokens": 2, "total_tokens": 12})
        >>> usage_from_result(LLMResult(generations=[[ChatGeneration(message=message)]]))
        Usage(input_tokens=10, output_tokens=2, total_tokens=12, ...)
    """
    if result is None:
        return None
    total: Usage | None = None
    for generations in result.generations:
        for generation in generations:
            metadata = getattr(getattr(generation, "message", None), "usage_metadata", None)
            if metadata:
                usage = Usage.from_usage_metadata(metadata)
                total = usage if total is None else total + usage
                break
    if total is not None:
        return total
    llm_output = result.llm_output or {}
    raw = (
        llm_output.get("token_usage") or llm_output.get("usage") or llm_output.get("usage_metadata")
    )
    return usage_from_dict(raw) if isinstance(raw, Mapping) else None


#: The name this function had in ``cost.handler``.
_usage_from_dict = usage_from_dict
