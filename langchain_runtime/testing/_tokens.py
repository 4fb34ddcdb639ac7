"""Token counting for the simulated model: the package's estimator."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any, cast

from langchain_core.messages.ai import UsageMetadata

if TYPE_CHECKING:
    from langchain_runtime.cost.tokens import TokenEstimator


@lru_cache(maxsize=1)
def _estimator() -> TokenEstimator:
    from langchain_runtime.cost.tokens import TokenEstimator

    return TokenEstimator()


def count_tokens(text: str) -> int:
    """Tokens in ``text`` as the package's ``TokenEstimator`` counts them."""
    return _estimator().count_text(text)


def usage_metadata(messages: Any, text: str, extra_output: int = 0) -> UsageMetadata:
    """Usage as a provider reports it: input counted on the prompt in the chat
    format (3 tokens per message + 3 to prime the reply), output on the reply."""
    input_tokens = sum(count_tokens(m.text) + 3 for m in messages) + 3
    output_tokens = count_tokens(text) + extra_output
    usage = {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens,
    }
    return cast(UsageMetadata, usage)
