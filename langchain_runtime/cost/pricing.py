"""Turning token usage into money."""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal

from langchain_runtime.cost.catalog import ModelCatalog, ModelInfo
from langchain_runtime.domain import Cost, Usage

__all__ = ["CostCalculator"]

_ONE_MILLION = Decimal(1_000_000)


class CostCalculator:
    """Prices a :class:`~langchain_runtime.domain.Usage` with a :class:`ModelCatalog`.

    Uncached input (``input - cache_read - cache_creation``), cache reads, cache
    writes (5-minute and 1-hour writes each at their own rate) and output are each
    charged at their own rate; cache rates fall back to the input rate, and the
    1-hour write rate to the cache-write rate, when the catalog has none. Reasoning
    tokens are part of output tokens and are not charged again. When a call's input
    exceeds the model's long-context threshold, the whole call is charged at the
    long-context rates.

    Args:
        catalog: Prices to use; the bundled table by default.

    Example:
        >>> from langchain_runtime.domain import Usage
        >>> calc = CostCalculator()
        >>> calc.cost("gpt-4o-mini", Usage(input_tokens=1000, output_tokens=500)).amount
        Decimal('0.00045')
        >>> calc.cost("claude-sonnet-4-5", Usage(input_tokens=5050, output_tokens=200,
        ...     cache_read_tokens=3000, cache_creation_tokens=2000)).amount
        Decimal('0.01155')
    """

    def __init__(self, catalog: ModelCatalog | None = None) -> None:
        self.catalog = catalog if catalog is not None else ModelCatalog.default()

    def __repr__(self) -> str:
        return f"CostCalculator({self.catalog!r})"

    def info(self, model: str | ModelInfo) -> ModelInfo:
        """The catalog entry for ``model`` (raises ConfigurationError if unknown)."""
        return model if isinstance(model, ModelInfo) else self.catalog.get(model)

    def cost(self, model: str | ModelInfo, usage: Usage) -> Cost:
        """What ``usage`` on ``model`` costs.

        Raises:
            ConfigurationError: ``model`` has no known price.
        """
        info = self.info(model)
        amount = self.amount(
            info,
            usage.input_tokens,
            usage.output_tokens,
            usage.cache_read_tokens,
            usage.cache_creation_tokens,
            cache_creation_1h_tokens=usage.cache_creation_1h_tokens,
        )
        return Cost(amount=amount, currency=info.currency)

    def amount(
        self,
        model: str | ModelInfo,
        input_tokens: int,
        output_tokens: int,
        cache_read_tokens: int = 0,
        cache_creation_tokens: int = 0,
        *,
        cache_creation_1h_tokens: int = 0,
    ) -> Decimal:
        """The cost of that many tokens as a bare Decimal (see :meth:`cost`).

        ``cache_creation_1h_tokens`` is the part of ``cache_creation_tokens`` written
        to a 1-hour cache.
        """
        info = self.info(model)
        inp, read, write, out = info.rates(input_tokens)
        cache_read = min(cache_read_tokens, input_tokens)
        cache_write = min(cache_creation_tokens, input_tokens - cache_read)
        write_1h = min(cache_creation_1h_tokens, cache_write)
        uncached = input_tokens - cache_read - cache_write
        total = (
            uncached * inp
            + cache_read * read
            + (cache_write - write_1h) * write
            + output_tokens * out
        )
        if write_1h:
            total += write_1h * info.write_1h_rate(input_tokens)
        return total / _ONE_MILLION

    def estimate(self, model: str | ModelInfo, input_tokens: int, output_tokens: int) -> Cost:
        """Cost of a call with that many (uncached) input and output tokens."""
        info = self.info(model)
        amount = self.amount(info, input_tokens, output_tokens)
        return Cost(amount=amount, currency=info.currency)

    def affordable_output_tokens(
        self, model: str | ModelInfo, input_tokens: int, amount: Decimal
    ) -> int:
        """Most output tokens a call with ``input_tokens`` input can have for ``amount``.

        Returns 0 when even the input does not fit, and a very large number (the
        model's ``max_output_tokens`` if known) when output is free.
        """
        info = self.info(model)
        inp, _read, _write, out = info.rates(input_tokens)
        left = amount * _ONE_MILLION - input_tokens * inp
        if left < 0:
            return 0
        if out == 0:
            return info.max_output_tokens or 2**31 - 1
        return int((left / out).to_integral_value(rounding=ROUND_FLOOR))
