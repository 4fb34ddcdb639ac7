"""What a LangChain model call says about itself, as OpenTelemetry GenAI attributes.

Pure functions over callback arguments (no OpenTelemetry import): the provider
name mapped to the convention's values, the requested and answering model, the
output limit after clamping, finish reasons, usage, and (only when asked) the
messages as the convention's JSON shape.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from langchain_runtime.domain import Usage

if TYPE_CHECKING:
    from langchain_core.messages import BaseMessage
    from langchain_core.outputs import LLMResult

__all__ = [
    "budget_attributes",
    "finish_reasons",
    "input_messages_json",
    "max_output_tokens",
    "output_messages_json",
    "provider_name",
    "refusal_attributes",
    "request_model",
    "response_model",
    "run_result_attributes",
    "usage_of",
]

# LangChain's ls_provider values -> gen_ai.provider.name well-known values
_PROVIDERS = {
    "openai": "openai",
    "azure": "azure.ai.openai",
    "azure_openai": "azure.ai.openai",
    "anthropic": "anthropic",
    "amazon_bedrock": "aws.bedrock",
    "bedrock": "aws.bedrock",
    "bedrock_converse": "aws.bedrock",
    "google_genai": "gcp.gemini",
    "google_vertexai": "gcp.vertex_ai",
    "google_anthropic_vertex": "gcp.vertex_ai",
    "mistral": "mistral_ai",
    "mistralai": "mistral_ai",
    "groq": "groq",
    "deepseek": "deepseek",
    "xai": "x_ai",
    "perplexity": "perplexity",
    "cohere": "cohere",
    "ibm": "ibm.watsonx.ai",
}
_MODEL_PARAMS = ("model", "model_name", "model_id", "deployment_name", "azure_deployment")
_MAX_OUTPUT_PARAMS = (
    "max_tokens",
    "max_completion_tokens",
    "max_output_tokens",
    "max_tokens_to_sample",
    "num_predict",
)


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def provider_name(metadata: Mapping[str, Any], serialized: Mapping[str, Any] | None) -> str:
    """``gen_ai.provider.name`` from ``ls_provider`` (else the class name, lowercased)."""
    raw = _str(metadata.get("ls_provider"))
    if raw is not None:
        return _PROVIDERS.get(raw.lower(), raw.lower())
    ident = (serialized or {}).get("id")
    if isinstance(ident, Sequence) and ident and isinstance(ident[-1], str):
        return ident[-1].lower().removeprefix("chat")
    return "unknown"


def request_model(
    params: Mapping[str, Any],
    metadata: Mapping[str, Any],
    serialized: Mapping[str, Any] | None = None,
) -> str | None:
    """The model asked for: invocation parameters, ``ls_model_name``, ``lcr_model``."""
    for key in _MODEL_PARAMS:
        if name := _str(params.get(key)):
            return name
    if name := _str(metadata.get("ls_model_name")):
        return name
    kwargs = (serialized or {}).get("kwargs")
    if isinstance(kwargs, Mapping):
        for key in _MODEL_PARAMS:
            if name := _str(kwargs.get(key)):
                return name
    return _str(metadata.get("lcr_model"))


def max_output_tokens(params: Mapping[str, Any], metadata: Mapping[str, Any]) -> int | None:
    """The call's output limit as sent (after the runtime clamped it), if any."""
    for key in _MAX_OUTPUT_PARAMS:
        value = params.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    declared = metadata.get("ls_max_tokens")
    return declared if isinstance(declared, int) and declared > 0 else None


def _first_generations(response: LLMResult) -> list[Any]:
    return [gens[0] for gens in response.generations if gens]


def response_model(response: LLMResult) -> str | None:
    """The model that answered, as the provider named it."""
    for gen in _first_generations(response):
        meta = getattr(getattr(gen, "message", None), "response_metadata", None) or {}
        for key in ("model_name", "model"):
            if name := _str(meta.get(key)):
                return name
    out = response.llm_output or {}
    return _str(out.get("model_name")) or _str(out.get("model"))


def finish_reasons(response: LLMResult) -> list[str]:
    """Why each candidate stopped (``stop``, ``length``, ``end_turn``, ``tool_calls``)."""
    reasons: list[str] = []
    for gens in response.generations:
        for gen in gens:
            info = gen.generation_info or {}
            meta = getattr(getattr(gen, "message", None), "response_metadata", None) or {}
            for source in (info, meta):
                reason = _str(source.get("finish_reason")) or _str(source.get("stop_reason"))
                if reason is not None:
                    reasons.append(reason)
                    break
    return reasons


def usage_of(response: LLMResult) -> Usage | None:
    """The usage the provider reported (``usage_metadata``, else ``llm_output``)."""
    from langchain_runtime.cost.usage import usage_from_result

    return usage_from_result(response)


def _role(message: BaseMessage) -> str:
    kind = message.type
    return {"human": "user", "ai": "assistant", "system": "system", "tool": "tool"}.get(kind, kind)


def _parts(message: BaseMessage) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    content = message.content
    if isinstance(content, str):
        if content:
            parts.append({"type": "text", "content": content})
    else:
        for block in content:
            if isinstance(block, str):
                parts.append({"type": "text", "content": block})
            elif isinstance(block, Mapping) and block.get("type") == "text":
                parts.append({"type": "text", "content": block.get("text", "")})
            else:
                parts.append({"type": "other", "content": repr(block)})
    for call in getattr(message, "tool_calls", None) or ():
        parts.append(
            {"type": "tool_call", "id": call.get("id"), "name": call.get("name"),
             "arguments": call.get("args")}
        )  # fmt: skip
    return parts


def input_messages_json(messages: Sequence[Sequence[BaseMessage]]) -> str:
    """``gen_ai.input.messages``: the prompt as the convention's JSON array."""
    flat = [m for batch in messages for m in batch]
    return json.dumps(
        [{"role": _role(m), "parts": _parts(m)} for m in flat], ensure_ascii=False, default=str
    )


def output_messages_json(response: LLMResult, reasons: Sequence[str]) -> str:
    """``gen_ai.output.messages``: each candidate answer with its finish reason."""
    out = []
    for i, gen in enumerate(_first_generations(response)):
        message = getattr(gen, "message", None)
        parts = _parts(message) if message is not None else [{"type": "text", "content": gen.text}]
        reason = reasons[i] if i < len(reasons) else None
        out.append({"role": "assistant", "parts": parts, "finish_reason": reason})
    return json.dumps(out, ensure_ascii=False, default=str)


def _num(value: Any) -> Any:
    if value is None or isinstance(value, (int, float, str, bool)):
        return value
    return float(value)  # Decimal


def budget_attributes(event: Any) -> dict[str, Any]:
    raw = {
        "langchain_runtime.budget.amount": _num(event.amount),
        "langchain_runtime.budget.currency": event.currency,
        "langchain_runtime.budget.input_tokens": event.input_tokens,
        "langchain_runtime.budget.output_tokens": event.output_tokens,
        "langchain_runtime.budget.limit": _num(event.limit),
        "langchain_runtime.budget.spent": _num(event.spent),
        "langchain_runtime.task.id": event.task_id,
        "langchain_runtime.budget.message": event.message,
    }
    return {k: v for k, v in raw.items() if v is not None}


def refusal_attributes(error: BaseException) -> dict[str, Any]:
    raw = {
        "langchain_runtime.budget.limit": _num(getattr(error, "limit", None)),
        "langchain_runtime.budget.spent": _num(getattr(error, "spent", None)),
        "langchain_runtime.task.id": getattr(error, "task_id", None),
        "langchain_runtime.budget.message": str(error),
    }
    return {k: v for k, v in raw.items() if v is not None}


def run_result_attributes(span: Any, result: Any) -> None:
    """Totals of an orchestrator run on its workflow span (when it returned a RunResult)."""
    from langchain_runtime.domain import RunResult

    if not isinstance(result, RunResult):
        return
    span.set_attributes(
        {
            "langchain_runtime.run.state": result.state.value,
            "langchain_runtime.run.result_id": result.run_id,
            "gen_ai.usage.input_tokens": result.usage.input_tokens,
            "gen_ai.usage.output_tokens": result.usage.output_tokens,
            "gen_ai.usage.cost.amount": float(result.cost.amount),
            "gen_ai.usage.cost.currency": result.cost.currency,
        }
    )
