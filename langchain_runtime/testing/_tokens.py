"""Token counting for the simulated model: the package's estimator when present."""

from __future__ import annotations

import re

_WORD = re.compile(r"\w+|[^\w\s]")


def count_tokens(text: str) -> int:
    """Tokens in ``text``: via ``TokenEstimator`` if available, else a word count."""
    try:
        from langchain_runtime.cost.tokens import TokenEstimator
    except ImportError:
        return len(_WORD.findall(text))
    return TokenEstimator.shared().count_text(text)
