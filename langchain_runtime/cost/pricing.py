"""Turning token usage into money."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Context, Decimal, localcontext
from typing import Any, Literal

from langchain_runtime.cost.catalog import ModelCatalog, ModelInfo
from langchain_runtime.domain import Cost, Usage

__all__ = ["CacheWriteTTL", "CostCalculator", "cache_write_ttl"]

_ONE_MILLION = Decimal(1_000_000)
#: Prices are computed exactly whatever the caller's decimal context (its precision
#: could be 2): 60 digits hold any token count times any per-1M price.
_EXACT = Context(prec=60, rounding=ROUND_HALF_EVEN)

CacheWriteTTL = Literal["5m", "1h"]


def cache_write_ttl(*where: Any) -> CacheWriteTTL | None:
    """The longest cache lifetime any ``cache_control`` mark in ``where`` asks for.

    Looks through messages (their content blocks and ``additional_kwargs``), tool
    schemas, dicts and lists, at any depth: ``"1h"`` when some mark has
    ``ttl: "1h"``, ``"5m"`` when there are only marks without a TTL or with
    ``ttl: "5m"`` (Anthropic's default), None when nothing asks for a cache write.

    Example:
        >>> from langchain_core.messages import SystemMessage
        >>> block = {"type": "text", "text": "long", "cache_control": {"type": "ephemeral"}}
        >>> cache_write_ttl([SystemMessage([block])])
        '5m'
        >>> cache_write_ttl({"cache_control": {"type": "ephemeral", "ttl": "1h"}})
        '1h'
        >>> cache_write_ttl(["no marks"]) is None
        True
    """
    found: CacheWriteTTL | None = None
    stack: list[Any] = list(where)
    seen = 0
    while stack and seen < 100_000:
        seen += 1
        item = stack.pop()
        if isinstance(item, Mapping):
            mark = item.get("cache_control")
            if isinstance(mark, Mapping):
                if str(mark.get("ttl") or "5m") == "1h":
                    return "1h"
                found = "5m"
            stack.extend(v for v in item.values() if isinstance(v, Mapping | list | tuple))
        elif isinstance(item, list | tuple):
            stack.extend(item)
        else:
            content = getattr(item, "content", None)
            if isinstance(content, list):
                stack.append(content)
            extra = getattr(item, "additional_kwargs", None)
            if isinstance(extra, Mapping):
                stack.append(extra)
    return found


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
        with localcontext(_EXACT):
            return self._amount(
                info,
                input_tokens,
                output_tokens,
                cache_read_tokens,
                cache_creation_tokens,
                cache_creation_1h_tokens,
            )

    def _amount(
        self,
        info: ModelInfo,
        input_tokens: int,
        output_tokens: int,
        cache_read_tokens: int,
        cache_creation_tokens: int,
        cache_creation_1h_tokens: int,
    ) -> Decimal:
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

    def hold_input_rate(
        self, model: str | ModelInfo, input_tokens: int, cache_write: CacheWriteTTL | None = None
    ) -> Decimal:
        """Per-1M rate a reservation charges every input token at, in the worst case.

        A request with a ``cache_control`` mark may be billed cache-write rates for
        any part of its input; which part is the provider's business (the marked
        prefix, at its own count). So the hold is simple and never under-counts:
        with a 1-hour mark (``cache_write="1h"``) all input is held at the larger of
        the input and the 1-hour write rate; with a 5-minute mark at the larger of
        the input and the 5-minute write rate; without marks at the input rate.

        Example:
            >>> calc = CostCalculator()
            >>> calc.hold_input_rate("claude-sonnet-4-5", 1000), calc.hold_input_rate(
            ...     "claude-sonnet-4-5", 1000, "5m"), calc.hold_input_rate(
            ...     "claude-sonnet-4-5", 1000, "1h")
            (Decimal('3.00'), Decimal('3.75'), Decimal('6.00'))
        """
        info = self.info(model)
        inp, _read, write, _out = info.rates(input_tokens)
        if cache_write == "1h":
            return max(inp, info.write_1h_rate(input_tokens))
        if cache_write == "5m":
            return max(inp, write)
        return inp

    def hold_amount(
        self,
        model: str | ModelInfo,
        input_tokens: int,
        output_tokens: int,
        cache_write: CacheWriteTTL | None = None,
    ) -> Decimal:
        """What a reservation for that many tokens holds: input at :meth:`hold_input_rate`.

        Example:
            >>> CostCalculator().hold_amount("claude-sonnet-4-5", 100_000, 0, "1h")
            Decimal('0.60')
        """
        info = self.info(model)
        with localcontext(_EXACT):
            rate = self.hold_input_rate(info, input_tokens, cache_write)
            _inp, _read, _write, out = info.rates(input_tokens)
            return (input_tokens * rate + output_tokens * out) / _ONE_MILLION

    def affordable_output_tokens(
        self,
        model: str | ModelInfo,
        input_tokens: int,
        amount: Decimal,
        *,
        cache_write: CacheWriteTTL | None = None,
    ) -> int:
        """Most output tokens a call with ``input_tokens`` input can have for ``amount``.

        Input is priced as a reservation holds it (:meth:`hold_input_rate` with
        ``cache_write``). Returns 0 when even the input does not fit, and a very
        large number (the model's ``max_output_tokens`` if known) when output is free.
        """
        info = self.info(model)
        with localcontext(_EXACT):
            _inp, _read, _write, out = info.rates(input_tokens)
            rate = self.hold_input_rate(info, input_tokens, cache_write)
            left = amount * _ONE_MILLION - input_tokens * rate
            if left < 0:
                return 0
            if out == 0:
                return info.max_output_tokens or 2**31 - 1
            return int((left / out).to_integral_value(rounding=ROUND_FLOOR))
