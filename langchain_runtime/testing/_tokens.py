"""Token counting for the simulated model: the package's estimator."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from langchain_runtime.cost.tokens import TokenEstimator


@lru_cache(maxsize=1)
def _estimator() -> TokenEstimator:
    from langchain_runtime.cost.tokens import TokenEstimator

    return TokenEstimator()


def count_tokens(text: str) -> int:
    """Tokens in ``text`` as the package's ``TokenEstimator`` counts them."""
    return _estimator().count_text(text)
